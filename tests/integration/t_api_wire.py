#!/usr/bin/env python3
"""Wire fixtures: each tests/data/wire/NAME-in.{xml,json} request is sent
to a fresh daemon and the reply compared with NAME-out.{xml,json} (HTTP
status line first, refs and uuids normalised). HX_REGEN=1 rewrites the
-out files. internal_error-* run against a daemon whose database disk is
full (root only)."""

import glob
import os
import subprocess

from hxtest import (PASSWORD, SOURCE_DIR, Daemon, Normaliser, ok, run_tests)
from t_api_sdk import vm_record

WIRE = os.path.join(SOURCE_DIR, "tests", "data", "wire")


def setup(d):
    s, sess = d.login()
    vm = ok(s.VM.create(sess, vm_record("fixture-vm", VCPUs_max="4", VCPUs_at_startup="2")))
    ok(s.VM.add_to_other_config(sess, vm, "fixture", "yes"))
    task = ok(s.task.create(sess, "finished", ""))
    ok(s.task.set_status(sess, task, "success"))
    dom0 = [r for r, v in ok(s.VM.get_all_records(sess)).items() if v["is_control_domain"]][0]
    subst = {"@SESSION@": sess, "@VM@": vm, "@TASK@": task, "@DOM0@": dom0,
             "@PASSWORD@": PASSWORD, "@BIG@": "x" * 300000}
    fixed = {sess: "@SESSION@", vm: "@VM@", task: "@TASK@", dom0: "@DOM0@",
             ok(s.VM.get_uuid(sess, vm)): "@VM-UUID@"}
    return subst, fixed


def run_case(d, path, subst, fixed):
    with open(path) as f:
        body = f.read()
    for k, v in subst.items():
        body = body.replace(k, v)
    is_json = path.endswith(".json")
    status, data = d.post("/jsonrpc" if is_json else "/", body.encode(),
                          "application/json" if is_json else "text/xml")
    norm = Normaliser(fixed)
    text = data.decode()
    # refs the fixture did not name, and sessions made by login fixtures
    import re
    text = re.sub(r"OpaqueRef:[0-9a-f-]{36}", lambda m: m.group(0) if m.group(0) in fixed
                  else "OpaqueRef:" + m.group(0)[10:], text)
    out = "HTTP %d\n%s" % (status, norm(text))
    if not out.endswith("\n"):
        out += "\n"
    return out


def check(path, actual):
    outpath = path.replace("-in.", "-out.")
    if os.environ.get("HX_REGEN"):
        with open(outpath, "w") as f:
            f.write(actual)
        return
    with open(outpath) as f:
        expected = f.read()
    assert expected == actual, "%s:\nexpected:\n%s\nactual:\n%s" % (
        os.path.basename(path), expected, actual)


def cases(internal):
    files = sorted(glob.glob(os.path.join(WIRE, "*-in.*")))
    return [f for f in files if os.path.basename(f).startswith("internal_error") == internal]


def test_fixtures():
    with Daemon() as d:
        subst, fixed = setup(d)
        failures = []
        for path in cases(False):
            try:
                check(path, run_case(d, path, subst, fixed))
            except AssertionError as e:
                failures.append(str(e))
        assert not failures, "\n".join(failures)


def test_internal_error_fixtures():
    if os.geteuid() != 0:
        print("# skipped: needs root to mount a tmpfs")
        return
    import tempfile
    mnt = tempfile.mkdtemp(prefix="hx-wire-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt], check=True)
    try:
        with Daemon(state_dir=os.path.join(mnt, "state")) as d:
            subst, fixed = setup(d)
            subprocess.run(["dd", "if=/dev/zero", "of=" + os.path.join(mnt, "fill"), "bs=4k"],
                           capture_output=True)
            for path in cases(True):
                check(path, run_case(d, path, subst, fixed))
    finally:
        subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)


if __name__ == "__main__":
    run_tests([test_fixtures, test_internal_error_fixtures])
