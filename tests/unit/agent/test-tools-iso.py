#!/usr/bin/env python3
"""Checks guest-tools.iso and its installer without booting anything.

The ISO is read back with xorriso (volume label, files, modes); install.sh is
taken from it and run with -r ROOT into fake system trees for each kind of
init (systemd, System V, rc.local), then run again (nothing changes), over
an older agent (upgraded), over a newer one (refused unless -f), in dry-run
mode (nothing changes) and with -d (everything it added is gone).

Usage: test-tools-iso.py guest-tools.iso
"""
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

ISO = None


def has_interpreter(path):
    """True if the ELF file asks for a program interpreter (dynamic linking)."""
    import struct

    with open(path, "rb") as f:
        head = f.read(64)
        assert head[:4] == b"\x7fELF" and head[4] == 2, "not a 64-bit ELF file"
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, = struct.unpack("<I", f.read(4))
            if p_type == 3:  # PT_INTERP
                return True
    return False


def tree(root):
    """{relative path: (kind, content or link target, mode)} of a directory."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p), 0)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", None, stat.S_IMODE(st.st_mode))
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", f.read(), stat.S_IMODE(st.st_mode))
    return out


class ToolsIsoTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.cd = os.path.join(cls.tmp, "cd")
        subprocess.run(["xorriso", "-osirrox", "on", "-indev", ISO, "-extract", "/", cls.cd],
                       check=True, capture_output=True)
        for d, dirs, files in os.walk(cls.cd):
            os.chmod(d, 0o755)
        cls.install = os.path.join(cls.cd, "Linux", "install.sh")
        cls.agent = os.path.join(cls.cd, "Linux", "hyperxe-agent")
        out = subprocess.run([cls.agent, "--version"], capture_output=True, text=True, check=True)
        cls.version = out.stdout.split()[-1]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def run_install(self, root, *args, check=True):
        r = subprocess.run(["sh", self.install, "-r", root, *args], capture_output=True, text=True)
        if check and r.returncode != 0:
            self.fail(f"install.sh {args}: {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def make_root(self, kind):
        root = tempfile.mkdtemp(dir=self.tmp)
        if kind == "systemd":
            for d in ("lib/systemd", "etc/systemd/system"):
                os.makedirs(os.path.join(root, d))
            path = os.path.join(root, "lib/systemd/systemd")
            with open(path, "w") as f:
                f.write("#!/bin/sh\n")
            os.chmod(path, 0o755)
        elif kind == "sysv":
            for l in range(7):
                os.makedirs(os.path.join(root, f"etc/rc{l}.d"))
            os.makedirs(os.path.join(root, "etc/init.d"))
        elif kind == "rclocal":
            os.makedirs(os.path.join(root, "etc"))
            with open(os.path.join(root, "etc/rc.local"), "w") as f:
                f.write("#!/bin/sh\necho before\nexit 0\n")
        return root

    def fake_agent(self, root, version):
        path = os.path.join(root, "usr/sbin/hyperxe-agent")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\necho 'hyperxe-agent {version}'\n")
        os.chmod(path, 0o755)

    # -- the ISO ----------------------------------------------------------

    def test_label_and_files(self):
        out = subprocess.run(["xorriso", "-indev", ISO, "-pvd_info"], capture_output=True,
                             text=True, check=True).stdout
        self.assertIn("Volume Id    : hyperxe Tools\n", out)
        files = {os.path.relpath(os.path.join(d, f), self.cd)
                 for d, _, fs in os.walk(self.cd) for f in fs}
        self.assertEqual(files, {"Linux/install.sh", "Linux/hyperxe-agent", "README.txt"})
        ls = subprocess.run(["xorriso", "-indev", ISO, "-find", "/Linux", "-exec", "lsdl"],
                            capture_output=True, text=True, check=True).stdout
        for n in ("hyperxe-agent", "install.sh"):
            line = [l for l in ls.splitlines() if l.endswith(f"'/Linux/{n}'")][0]
            self.assertTrue(line.startswith("-r-xr-xr-x"), line)
        self.assertRegex(self.version, r"^\d+\.\d+\.\d+$")
        # A static program: runs anywhere, needs no loader (sanitizer builds
        # link it dynamically and say so in HX_AGENT_STATIC=0).
        if os.environ.get("HX_AGENT_STATIC", "1") == "1":
            self.assertFalse(has_interpreter(self.agent), "the agent is not a static program")

    def test_installer_is_posix_sh(self):
        for sh in ("dash", "busybox"):
            if shutil.which(sh):
                cmd = [sh, "-n", self.install] if sh == "dash" else [sh, "sh", "-n", self.install]
                subprocess.run(cmd, check=True)

    # -- installing -------------------------------------------------------

    def check_agent(self, root):
        with open(os.path.join(root, "usr/sbin/hyperxe-agent"), "rb") as f, \
                open(self.agent, "rb") as g:
            self.assertEqual(f.read(), g.read())
        self.assertEqual(os.stat(os.path.join(root, "usr/sbin/hyperxe-agent")).st_mode & 0o777,
                         0o755)

    def check_idempotent(self, root):
        before = tree(root)
        r = self.run_install(root)
        self.assertIn("already installed", r.stdout)
        self.assertEqual(tree(root), before)

    def check_uninstall(self, root, pristine):
        r = self.run_install(root, "-n", "-d")
        self.assertIn("would", r.stdout)
        self.run_install(root, "-d")
        now = tree(root)
        # Only directories the installer created may remain.
        extra = {k for k in set(now) - set(pristine) if now[k][0] != "dir"}
        self.assertEqual(extra, set())
        for k, v in pristine.items():
            if k == "etc/rc.local":
                # Made executable so that it runs; the rest is as it was.
                v = v[:2] + (0o755,)
            self.assertEqual(now.get(k), v, k)

    def test_systemd(self):
        root = self.make_root("systemd")
        pristine = tree(root)
        r = self.run_install(root)
        self.assertIn(f"{self.version} installed (systemd)", r.stdout)
        self.check_agent(root)
        with open(os.path.join(root, "etc/systemd/system/hyperxe-agent.service")) as f:
            unit = f.read()
        self.assertIn("ExecStart=/usr/sbin/hyperxe-agent\n", unit)
        self.assertIn("WantedBy=multi-user.target\n", unit)
        link = os.path.join(root, "etc/systemd/system/multi-user.target.wants/hyperxe-agent.service")
        self.assertEqual(os.readlink(link), "/etc/systemd/system/hyperxe-agent.service")
        self.assertFalse(os.path.exists(os.path.join(root, "etc/rc.local")))
        self.check_idempotent(root)
        self.check_uninstall(root, pristine)

    def test_sysv(self):
        root = self.make_root("sysv")
        pristine = tree(root)
        r = self.run_install(root)
        self.assertIn("installed (sysv)", r.stdout)
        self.check_agent(root)
        initd = os.path.join(root, "etc/init.d/hyperxe-agent")
        self.assertEqual(os.stat(initd).st_mode & 0o777, 0o755)
        with open(initd) as f:
            self.assertIn("# Provides:          hyperxe-agent", f.read())
        for l in (2, 3, 4, 5):
            self.assertEqual(os.readlink(os.path.join(root, f"etc/rc{l}.d/S20hyperxe-agent")),
                             "../init.d/hyperxe-agent")
        for l in (0, 1, 6):
            self.assertEqual(os.readlink(os.path.join(root, f"etc/rc{l}.d/K01hyperxe-agent")),
                             "../init.d/hyperxe-agent")
        subprocess.run(["sh", "-n", initd], check=True)
        self.check_idempotent(root)
        self.check_uninstall(root, pristine)

    def test_rclocal(self):
        root = self.make_root("rclocal")
        pristine = tree(root)
        r = self.run_install(root)
        self.assertIn("installed (rclocal)", r.stdout)
        self.check_agent(root)
        with open(os.path.join(root, "etc/rc.local")) as f:
            lines = f.read().splitlines()
        hook = [l for l in lines if "hyperxe-agent" in l]
        self.assertEqual(len(hook), 1)
        # The hook goes before the final exit.
        self.assertLess(lines.index(hook[0]), lines.index("exit 0"))
        self.check_idempotent(root)
        self.check_uninstall(root, pristine)

    def test_rclocal_created(self):
        root = tempfile.mkdtemp(dir=self.tmp)
        self.run_install(root)
        path = os.path.join(root, "etc/rc.local")
        self.assertTrue(os.access(path, os.X_OK))
        with open(path) as f:
            self.assertTrue(f.read().startswith("#!/bin/sh\n"))

    def test_upgrade(self):
        root = self.make_root("sysv")
        self.fake_agent(root, "0.0.1")
        r = self.run_install(root)
        self.assertIn(f"upgraded from 0.0.1 to {self.version}", r.stdout)
        self.check_agent(root)

    def test_newer_refused(self):
        root = self.make_root("sysv")
        self.fake_agent(root, "99.0.0")
        r = self.run_install(root, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("newer", r.stderr)
        with open(os.path.join(root, "usr/sbin/hyperxe-agent")) as f:
            self.assertIn("99.0.0", f.read())
        r = self.run_install(root, "-f")
        self.check_agent(root)

    def test_dry_run(self):
        for kind in ("systemd", "sysv", "rclocal"):
            root = self.make_root(kind)
            before = tree(root)
            r = self.run_install(root, "-n")
            self.assertIn("would install", r.stdout)
            self.assertEqual(tree(root), before, kind)


def main():
    global ISO
    ISO = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
