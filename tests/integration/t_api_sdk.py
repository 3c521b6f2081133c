#!/usr/bin/env python3
"""XenAPI used the way XenServer's Python SDK uses it: xmlrpc.client,
login, get_all_records, getters and setters, create/destroy, Async calls
with tasks, and event.from loops. Also the same session over JSON-RPC."""

import threading
import time

from hxtest import Daemon, fails, ok, run_tests

D = None


def vm_record(name, **kw):
    rec = {
        "name_label": name, "name_description": "", "user_version": "1",
        "is_a_template": False, "affinity": "OpaqueRef:NULL",
        "memory_static_max": str(256 << 20), "memory_dynamic_max": str(256 << 20),
        "memory_dynamic_min": str(256 << 20), "memory_static_min": str(128 << 20),
        "VCPUs_params": {}, "VCPUs_max": "2", "VCPUs_at_startup": "1",
        "actions_after_shutdown": "destroy", "actions_after_reboot": "restart",
        "actions_after_crash": "restart", "PV_bootloader": "", "PV_kernel": "",
        "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "cd"},
        "platform": {}, "other_config": {}, "recommendations": "",
    }
    rec.update(kw)
    return rec


def test_login_and_records():
    s, sess = D.login()
    vms = ok(s.VM.get_all_records(sess))
    dom0 = [r for r in vms.values() if r["is_control_domain"]]
    assert len(dom0) == 1
    host = ok(s.session.get_this_host(sess, sess))
    hrec = ok(s.host.get_record(sess, host))
    assert hrec["software_version"]["accelerator"] == "tcg"
    assert int(hrec["API_version_major"]) == 2
    pool = ok(s.pool.get_all(sess))[0]
    assert ok(s.pool.get_master(sess, pool)) == host
    sr = ok(s.pool.get_default_SR(sess, pool))
    assert ok(s.SR.get_name_label(sess, sr)) == "Local storage"
    assert ok(s.SR.get_type(sess, sr)) == "ext"
    nets = ok(s.network.get_all_records(sess))
    assert "xenbr0" in [n["bridge"] for n in nets.values()]
    assert ok(s.session.logout(sess)) == ""
    fails(s.VM.get_all(sess), "SESSION_INVALID")


def test_create_set_destroy():
    s, sess = D.login()
    vm = ok(s.VM.create(sess, vm_record("sdk-vm")))
    assert ok(s.VM.get_power_state(sess, vm)) == "Halted"
    uuid = ok(s.VM.get_uuid(sess, vm))
    assert ok(s.VM.get_by_uuid(sess, uuid)) == vm
    assert vm in ok(s.VM.get_by_name_label(sess, "sdk-vm"))
    ok(s.VM.set_name_label(sess, vm, "renamed"))
    ok(s.VM.add_to_other_config(sess, vm, "k", "v"))
    assert fails(s.VM.add_to_other_config(sess, vm, "k", "w"), "MAP_DUPLICATE_KEY") == \
        ["VM", "other_config", uuid, "k"]
    ok(s.VM.add_tags(sess, vm, "blue"))
    ok(s.VM.add_tags(sess, vm, "blue"))
    rec = ok(s.VM.get_record(sess, vm))
    assert rec["name_label"] == "renamed" and rec["other_config"] == {"k": "v"}
    assert rec["tags"] == ["blue"]
    ok(s.VM.remove_from_other_config(sess, vm, "k"))
    # memory setters validate the order of the limits
    fails(s.VM.set_memory_static_max(sess, vm, str(64 << 20)),
          "MEMORY_CONSTRAINT_VIOLATION_ORDER")
    ok(s.VM.set_memory_limits(sess, vm, str(128 << 20), str(512 << 20), str(256 << 20),
                              str(512 << 20)))
    assert ok(s.VM.get_memory_static_max(sess, vm)) == str(512 << 20)
    p = fails(s.VM.set_VCPUs_max(sess, vm, "0"), "INVALID_VALUE")
    assert p[0] == "VCPUs_max"
    fails(s.VM.set_VCPUs_at_startup(sess, vm, "3"), "VALUE_NOT_SUPPORTED")
    where = ok(s.VM.get_all_records_where(sess, 'field "name__label" = "renamed"'))
    assert list(where) == [vm]
    assert ok(s.VM.get_all_where(sess, 'field "power_state" = "Halted" and '
                                       'not (field "is_control_domain" = "true") and '
                                       'field "is_a_template" = "false"')) == [vm]
    ok(s.VM.destroy(sess, vm))
    fails(s.VM.get_record(sess, vm), "HANDLE_INVALID")


def test_async_and_tasks():
    s, sess = D.login()
    task = ok(s.Async.VM.create(sess, vm_record("async-vm")))
    for _ in range(100):
        st = ok(s.task.get_status(sess, task))
        if st != "pending":
            break
        time.sleep(0.05)
    assert st == "success", st
    result = ok(s.task.get_result(sess, task))
    assert result.startswith("<value>OpaqueRef:") and result.endswith("</value>")
    vm = result[len("<value>"):-len("</value>")]
    assert ok(s.VM.get_name_label(sess, vm)) == "async-vm"
    ok(s.task.destroy(sess, task))
    # a failing Async call fails its task, with error_info
    bad = vm_record("bad", memory_static_min=str(1 << 40))
    task = ok(s.Async.VM.create(sess, bad))
    for _ in range(100):
        if ok(s.task.get_status(sess, task)) != "pending":
            break
        time.sleep(0.05)
    assert ok(s.task.get_status(sess, task)) == "failure"
    assert ok(s.task.get_error_info(sess, task))[0] == "MEMORY_CONSTRAINT_VIOLATION_ORDER"
    # client tasks
    t = ok(s.task.create(sess, "mine", "a client task"))
    ok(s.task.set_progress(sess, t, 0.5))
    assert float(ok(s.task.get_progress(sess, t))) == 0.5
    ok(s.task.cancel(sess, t))
    assert ok(s.task.get_status(sess, t)) == "cancelling"
    ok(s.task.set_status(sess, t, "cancelled"))
    fails(s.task.cancel(sess, t), "OPERATION_NOT_ALLOWED")


def test_event_from():
    s, sess = D.login()
    first = ok(s.event.__getattr__("from")(sess, ["vm"], "", 0.0))
    assert any(e["class"] == "vm" and e["operation"] in ("add", "mod") for e in first["events"])
    token = first["token"]
    # nothing new: returns after the timeout with no events
    t0 = time.time()
    empty = ok(s.event.__getattr__("from")(sess, ["vm"], token, 0.5))
    assert empty["events"] == [] and time.time() - t0 >= 0.4
    # a change in another thread wakes a waiting call early
    result = {}

    def wait():
        s2, sess2 = D.login()
        t1 = time.time()
        result["batch"] = ok(s2.event.__getattr__("from")(sess2, ["VM"], token, 30.0))
        result["took"] = time.time() - t1
    th = threading.Thread(target=wait)
    th.start()
    time.sleep(0.3)
    vm = ok(s.VM.create(sess, vm_record("evented")))
    th.join(10)
    evs = result["batch"]["events"]
    assert result["took"] < 5, result["took"]
    assert [e for e in evs if e["ref"] == vm and e["operation"] == "add"], evs
    assert evs[0]["snapshot"]["name_label"] == "evented"
    # per-object subscription and deletion events
    token = result["batch"]["token"]
    ok(s.VM.destroy(sess, vm))
    b = ok(s.event.__getattr__("from")(sess, ["vm/" + vm], token, 5.0))
    assert [e["operation"] for e in b["events"]] == ["del"]
    fails(s.event.__getattr__("from")(sess, ["nosuchclass"], "", 1.0),
          "EVENT_SUBSCRIPTION_PARSE_FAILURE")
    fails(s.event.__getattr__("from")(sess, ["vm"], "garbage", 1.0),
          "EVENT_FROM_TOKEN_PARSE_FAILURE")


def test_legacy_events():
    s, sess = D.login()
    fails(s.event.next(sess), "SESSION_NOT_REGISTERED")
    ok(s.event.register(sess, ["vm"]))
    vm = ok(s.VM.create(sess, vm_record("legacy")))
    evs = ok(s.event.next(sess))
    assert any(e["ref"] == vm and e["operation"] == "add" for e in evs)
    ok(s.event.unregister(sess, ["vm"]))
    ok(s.VM.destroy(sess, vm))


def test_jsonrpc_shares_sessions():
    s, sess = D.login()
    r = D.jsonrpc("VM.get_all", [sess])
    assert r["jsonrpc"] == "2.0" and isinstance(r["result"], list), r
    r = D.jsonrpc("VM.get_all", [sess], version=None)
    assert r["error"] is None and isinstance(r["result"], list), r
    r = D.jsonrpc("session.login_with_password", ["root", "wrong"], version=None)
    assert r["result"] is None and r["error"][0] == "SESSION_AUTHENTICATION_FAILED", r
    r = D.jsonrpc("VM.get_record", [sess, "OpaqueRef:NULL"])
    assert r["error"] == {"code": 1, "message": "HANDLE_INVALID",
                          "data": ["VM", "OpaqueRef:NULL"]}, r


def test_https_and_list_methods():
    s = D.xmlrpc(tls=True)
    s, sess = D.login(s)
    assert ok(s.VM.get_all(sess))
    methods = D.xmlrpc().system.listMethods()
    for m in ("VM.get_record", "VM.set_name_label", "Async.VM.set_memory", "event.from",
              "VM.add_to_other_config", "SR.set_name_label"):
        assert m in methods, m


def main():
    global D
    with Daemon() as d:
        D = d
        run_tests([test_login_and_records, test_create_set_destroy, test_async_and_tasks,
                   test_event_from, test_legacy_events, test_jsonrpc_shares_sessions,
                   test_https_and_list_methods])


if __name__ == "__main__":
    main()
