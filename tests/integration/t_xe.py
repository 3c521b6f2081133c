#!/usr/bin/env python3
"""xe against a real daemon: golden output of the list and param-list
commands of every class (XenServer's layout byte for byte), the param
commands, filters, --minimal, errors and exit status, connection options
(-s/-p/-u/-pw/-pwf, --nossl, ~/.xe, XE_EXTRA_ARGS) and help."""

import os
import re

from hxtest import PASSWORD, Daemon, Normaliser, check_golden, ok, run_tests
from t_api_sdk import vm_record

D = None
OBJ = {}

# Labels whose values depend on the machine the test runs on.
VARYING = {
    "host": ["name-label", "hostname", "address", "software-version", "cpu_info",
             "memory-total", "memory-free", "memory-free-computed", "resident-vms",
             "control-domain-uuid"],
    "host-cpu": ["vendor", "speed", "model", "family", "modelname", "stepping", "flags"],
    "sr": ["physical-size", "physical-utilisation", "host"],
    "pbd": ["host-name-label", "device-config"],
    "task": ["created", "finished"],
    "message": ["timestamp"],
    "vdi": ["physical-utilisation"],
}


def normalise(view, text, norm):
    out = []
    for line in text.splitlines():
        m = re.match(r"^(\s*)([^ ]+) \((...)\)( \[DEPRECATED\])?\s*: ", line)
        if m and m.group(2) in VARYING.get(view, []):
            line = line[:m.end()] + "<varies>"
        out.append(line)
    return norm("\n".join(out) + ("\n" if text.endswith("\n") else ""))


def setup():
    s, sess = D.login()
    vm = ok(s.VM.create(sess, vm_record("golden-vm", VCPUs_max="2")))
    ok(s.VM.add_to_platform(sess, vm, "acpi", "1"))
    ok(s.VM.add_tags(sess, vm, "web"))
    tmpl = ok(s.VM.create(sess, vm_record("golden-template", is_a_template=True,
                                           name_description="A template")))
    pool = ok(s.pool.get_all(sess))[0]
    sr = ok(s.pool.get_default_SR(sess, pool))
    net = [r for r, v in ok(s.network.get_all_records(sess)).items()
           if v["bridge"] == "xenbr0"][0]
    vdi = ok(s.VDI.create(sess, {"name_label": "golden-disk", "name_description": "",
                                 "SR": sr, "virtual_size": str(1 << 30), "type": "user",
                                 "sharable": False, "read_only": False, "other_config": {},
                                 "storage_lock": False, "managed": True, "missing": False,
                                 "parent": "OpaqueRef:NULL", "physical_utilisation": "0",
                                 "location": ""}))
    vbd = ok(s.VBD.create(sess, {"VM": vm, "VDI": "OpaqueRef:NULL", "userdevice": "3",
                                 "bootable": False, "mode": "RO", "type": "CD",
                                 "empty": True, "other_config": {},
                                 "qos_algorithm_type": "", "qos_algorithm_params": {}}))
    vif = ok(s.VIF.create(sess, {"device": "0", "network": net, "VM": vm,
                                 "MAC": "02:00:00:00:00:01", "MTU": "1500",
                                 "other_config": {}, "qos_algorithm_type": "",
                                 "qos_algorithm_params": {}}))
    task = ok(s.task.create(sess, "golden task", "for the golden output"))
    msg = ok(s.message.create(sess, "VM_STARTED", "5", "VM", ok(s.VM.get_uuid(sess, vm)),
                              "golden"))
    app = ok(s.VM_appliance.create(sess, {"name_label": "golden-app",
                                          "name_description": ""}))
    con = ok(s.console.create(sess, {"other_config": {}}))
    OBJ.update(vm=vm, template=tmpl, sr=sr, network=net, vdi=vdi, vbd=vbd, vif=vif, task=task,
               message=msg, appliance=app, console=con, pool=pool,
               host=ok(s.host.get_all(sess))[0])
    OBJ["host-cpu"] = ok(s.host_cpu.get_all(sess))[0]
    OBJ["pbd"] = ok(s.SR.get_PBDs(sess, sr))[0]
    return s, sess


def uuid_of(view):
    s, sess = D.login()
    cls = {"template": "VM", "vm": "VM", "host-cpu": "host_cpu", "appliance": "VM_appliance",
           "sr": "SR", "vdi": "VDI", "vbd": "VBD", "vif": "VIF", "pbd": "PBD"}.get(view, view)
    return ok(getattr(s, cls).get_uuid(sess, OBJ[view]))


def test_golden_every_class():
    norm = Normaliser()
    views = ["vm", "template", "snapshot", "host", "host-cpu", "pool", "sr", "pbd", "vdi",
             "vbd", "vif", "network", "pif", "task", "console", "message", "appliance"]
    for v in views:
        if v == "vm":
            r = D.xe("vm-list", "is-control-domain=false")
        elif v == "template":
            r = D.xe("template-list", "name-label=golden-template")
        elif v in ("host-cpu",):
            r = D.xe(v + "-list", "number=0")
        elif v == "task":
            r = D.xe("task-list", "name-label=golden task")
        elif v == "vdi":
            r = D.xe("vdi-list", "name-label=golden-disk")
        else:
            r = D.xe(v + "-list")
        check_golden("xe/%s-list.out" % v, normalise(v, r.stdout, norm))
        if v in OBJ:
            r = D.xe(v + "-param-list", "uuid=" + uuid_of(v))
            check_golden("xe/%s-param-list.out" % v, normalise(v, r.stdout, norm))


def test_param_commands():
    u = uuid_of("vm")
    D.xe("vm-param-set", "uuid=" + u, "name-description=edited", "memory-static-max=1GiB",
         "other-config:owner=me", "actions-after-crash=preserve")
    get = lambda *a: D.xe("vm-param-get", "uuid=" + u, *a).stdout
    assert get("param-name=name-description") == "edited\n"
    assert get("param-name=memory-static-max") == "%d\n" % (1 << 30)
    assert get("param-name=other-config", "param-key=owner") == "me\n"
    assert get("param-name=actions-after-crash") == "Preserve\n"
    assert get("param-name=power-state") == "halted\n"
    D.xe("vm-param-add", "uuid=" + u, "param-name=tags", "param-key=db")
    assert get("param-name=tags") == "web; db\n"
    D.xe("vm-param-remove", "uuid=" + u, "param-name=tags", "param-key=web")
    assert get("param-name=tags") == "db\n"
    D.xe("vm-param-add", "uuid=" + u, "param-name=other-config", "a=1", "b=2")
    assert get("param-name=other-config") == "owner: me; a: 1; b: 2\n"
    D.xe("vm-param-clear", "uuid=" + u, "param-name=other-config")
    assert get("param-name=other-config") == "\n"
    r = D.xe("vm-param-get", "uuid=" + u, "param-name=other-config", "param-key=gone",
             check=False)
    assert r.returncode == 1 and "Key gone not found in map" in r.stderr
    # setting a ref field by uuid, and clearing it
    D.xe("vm-param-set", "uuid=" + u, "affinity=" + uuid_of("host"))
    assert get("param-name=affinity") == uuid_of("host") + "\n"
    D.xe("vm-param-set", "uuid=" + u, "affinity=")
    assert get("param-name=affinity") == "<not in database>\n"


def test_filters_minimal_params():
    r = D.xe("vm-list", "name-label=golden-vm", "--minimal")
    assert r.stdout == uuid_of("vm") + "\n"
    r = D.xe("vm-list", "name-label=nothing-like-this", "--minimal")
    assert r.stdout == "\n"
    r = D.xe("vm-list", "name-label=golden-vm", "params=name-label,power-state")
    assert r.stdout == ("name-label ( RW)     : golden-vm\n"
                        "    power-state ( RO): halted\n\n\n"), repr(r.stdout)
    r = D.xe("vm-list", "tags:contains=db", "--minimal")
    assert r.stdout.strip() == uuid_of("vm")
    r = D.xe("network-list", "bridge=xenbr0", "params=bridge", "--minimal")
    assert r.stdout == "xenbr0\n"
    s, sess = D.login()
    ok(s.VM.set_name_description(sess, OBJ["vm"], "a,b\\c"))
    r = D.xe("vm-list", "name-label=golden-vm", "params=name-description", "--minimal")
    assert r.stdout == "a\\,b\\\\c\n", r.stdout


def test_errors_and_exit_status():
    r = D.xe("no-such-command", check=False)
    assert r.returncode == 1 and "Unknown command: no-such-command" in r.stderr
    r = D.xe("vm-param-get", "param-name=uuid", check=False)
    assert r.returncode == 1 and "Required parameter not found: uuid" in r.stderr
    r = D.xe("vm-param-list", "uuid=00000000-0000-0000-0000-000000000000", check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("UUID_INVALID: No object of this class has the given UUID.\n"), \
        r.stderr
    assert "type: VM\nuuid: 00000000-0000-0000-0000-000000000000\n" in r.stderr
    u = uuid_of("vm")
    r = D.xe("vm-param-set", "uuid=" + u, "power-state=running", check=False)
    assert r.returncode == 1 and "read-only" in r.stderr
    r = D.xe("vm-param-set", "uuid=" + u, "actions-after-crash=explode", check=False)
    assert r.returncode == 1 and "expected one of" in r.stderr
    r = D.xe("vm-param-set", "uuid=" + u, "memory-static-max=1MiB", check=False)
    assert r.returncode == 1
    assert "static_min <= dynamic_min <= dynamic_max <= static_max" in r.stderr
    r = D.xe("vm-list", "colour=blue", check=False)
    assert r.returncode == 1 and "Unknown field 'colour'" in r.stderr
    # errors name the VM as "uuid (name)"
    dom0 = D.xe("vm-list", "is-control-domain=true", "--minimal").stdout.strip()
    r = D.xe("vm-param-set", "uuid=" + dom0, "name-label=x", check=False)
    assert r.returncode == 1 and "The control domain" in r.stderr, r.stderr


def test_connection_options():
    base = ["-s", "127.0.0.1", "-p", str(D.port), "--nossl"]
    r = D.xe(*base, "-u", "root", "-pw", PASSWORD, "host-list", "--minimal")
    assert len(r.stdout.strip()) == 36
    r = D.xe(*base, "-u", "root", "-pw", "wrong", "host-list", check=False)
    assert r.returncode == 1 and r.stderr == "Authentication failed\n", r.stderr
    pwf = os.path.join(D.tmp, "pwf")
    with open(pwf, "w") as f:
        f.write("root\n%s\n" % PASSWORD)
    D.xe(*base, "-pwf", pwf, "host-list")
    # HTTPS with the host's self-signed certificate
    D.xe("-s", "127.0.0.1", "-p", str(D.tls_port), "-u", "root", "-pw", PASSWORD, "sr-list")
    # ~/.xe and XE_EXTRA_ARGS (HOME is the test directory)
    with open(os.path.join(D.tmp, ".xe"), "w") as f:
        f.write("server=127.0.0.1\nport=%d\nnossl=true\nusername=root\npassword=wrong\n"
                % D.port)
    r = D.xe("host-list", check=False)
    assert r.returncode == 1 and "Authentication failed" in r.stderr
    D.xe("host-list", env={"XE_EXTRA_ARGS": "password=%s" % PASSWORD})
    os.unlink(os.path.join(D.tmp, ".xe"))
    # nothing listening
    r = D.xe("-s", "127.0.0.1", "-p", "1", "--nossl", "host-list", check=False)
    assert r.returncode == 1 and "Cannot reach the server" in r.stderr


def test_help():
    r = D.xe("help")
    assert "Usage:" in r.stdout and "vm-list" in r.stdout
    r = D.xe("help", "--all")
    assert "sr-param-set" in r.stdout and "appliance-list" in r.stdout
    r = D.xe("help", "vm-param-get")
    assert r.stdout.startswith("command name            : vm-param-get\n"), r.stdout
    assert "reqd params     : uuid, param-name" in r.stdout
    r = D.xe("help", "--minimal")
    assert "," in r.stdout and "\n" not in r.stdout.strip()


def main():
    global D
    with Daemon() as d:
        D = d
        setup()
        run_tests([test_golden_every_class, test_param_commands, test_filters_minimal_params,
                   test_errors_and_exit_status, test_connection_options, test_help])


if __name__ == "__main__":
    main()
