#!/usr/bin/env python3
"""Bad input and hostile clients: malformed XML and JSON, wrong types,
unknown methods and classes, bodies over the 1 MiB limit, slow clients,
1,000 idle connections, repeated failed logins. Each gets its error and
the daemon keeps serving everyone else."""

import json
import socket
import subprocess
import threading
import time

from hxtest import PASSWORD, Daemon, fails, ok, run_tests

D = None


def alive():
    s, sess = D.login()
    assert isinstance(ok(s.VM.get_all(sess)), list)


def test_malformed_xml_and_json():
    for body in [b"", b"<methodCall>", b"not xml at all", b"<a/>",
                 b"<methodCall><methodName>VM.get_all</methodName><params><param><value>"
                 b"<int>notanumber</int></value></param></params></methodCall>",
                 b"<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY a 'aaaaaaaa'>"
                 b"<!ENTITY b '&a;&a;&a;&a;&a;&a;'>]><methodCall><methodName>&b;"
                 b"</methodName></methodCall>",
                 b"<methodCall><methodName>x</methodName>" + b"<params>" * 1000]:
        status, data = D.post("/", body)
        assert status == 500, (body, status)
        assert b"<html>" in data
    for body in [b"", b"{", b"[]", b'{"method": "VM.get_all"}', b'{"method": 1, "id": 1}',
                 b'{"method": "VM.get_all", "params": {}, "id": 1}',
                 b'{"method": "VM.get_all", "params": [], "id": null}',
                 b'{"jsonrpc": "3.0", "method": "VM.get_all", "params": [], "id": 1}',
                 b"[" * 100000]:
        status, _ = D.post("/jsonrpc", body, "application/json")
        assert status == 500, (body[:40], status)
    alive()


def test_wrong_types_and_unknown_methods():
    s, sess = D.login()
    vm = ok(s.VM.get_all(sess))[0]
    assert fails(s.VM.set_name_label(sess, vm, 42), "FIELD_TYPE_ERROR") == ["value"]
    assert fails(s.VM.set_memory_static_max(sess, vm, "lots"), "FIELD_TYPE_ERROR") == \
        ["value"]
    assert fails(s.VM.set_is_a_template(sess, vm, "true"), "FIELD_TYPE_ERROR") == ["value"]
    assert fails(s.VM.no_such_thing(sess), "MESSAGE_METHOD_UNKNOWN") == ["VM.no_such_thing"]
    assert fails(s.Nothing.get_all(sess), "MESSAGE_METHOD_UNKNOWN") == ["Nothing.get_all"]
    assert fails(s.nodot(sess), "MESSAGE_METHOD_UNKNOWN") == ["nodot"]
    assert fails(s.VM.get_record(sess), "MESSAGE_PARAMETER_COUNT_MISMATCH") == \
        ["VM.get_record", "1", "0"]
    assert fails(s.VM.get_record(sess, vm, vm), "MESSAGE_PARAMETER_COUNT_MISMATCH") == \
        ["VM.get_record", "1", "2"]
    assert fails(s.VM.get_record("OpaqueRef:bogus", vm), "SESSION_INVALID") == \
        ["OpaqueRef:bogus"]
    assert fails(s.VM.get_record(sess, "OpaqueRef:bogus"), "HANDLE_INVALID") == \
        ["VM", "OpaqueRef:bogus"]
    assert fails(s.VM.get_by_uuid(sess, "bogus"), "UUID_INVALID") == ["VM", "bogus"]
    # a VDI ref where a VM ref belongs
    sr = ok(s.SR.get_all(sess))[0]
    fails(s.VM.get_record(sess, sr), "HANDLE_INVALID")
    fails(s.VM.get_all_records_where(sess, "field = "), "INVALID_VALUE")
    # the control domain is off limits
    dom0 = [r for r, v in ok(s.VM.get_all_records(sess)).items() if v["is_control_domain"]][0]
    fails(s.VM.destroy(sess, dom0), "PERMISSION_DENIED")
    alive()


def test_body_limit():
    big = b"<methodCall><methodName>VM.get_all</methodName><params><param><value>" + \
        b"x" * (1024 * 1024) + b"</value></param></params></methodCall>"
    status, _ = D.post("/", big)
    assert status == 413, status
    alive()


def test_slow_clients_do_not_block_others():
    socks = []
    for _ in range(20):
        c = socket.create_connection(("127.0.0.1", D.port))
        c.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n<method")
        socks.append(c)
    t0 = time.time()
    alive()
    assert time.time() - t0 < 5
    for c in socks:
        c.close()


def test_thousand_idle_connections():
    socks = []
    try:
        for _ in range(1000):
            socks.append(socket.create_connection(("127.0.0.1", D.port), timeout=10))
        t0 = time.time()
        for _ in range(5):
            alive()
        assert time.time() - t0 < 10
        # and they still work when they finally speak
        for c in socks[:10]:
            c.sendall(b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 2\r\n\r\n{}")
            assert b"500" in c.recv(100)
    finally:
        for c in socks:
            c.close()
    alive()


def test_failed_logins_are_rate_limited():
    s = D.xmlrpc()
    for _ in range(5):
        p = fails(s.session.login_with_password("root", "wrong", "", ""),
                  "SESSION_AUTHENTICATION_FAILED")
        assert p == ["root", "Authentication failure"]
    # now even the right password is refused from this address, with a clear message
    p = fails(s.session.login_with_password("root", PASSWORD, "", ""),
              "SESSION_AUTHENTICATION_FAILED")
    assert "Too many failed logins" in p[1], p
    # the local root socket is not affected
    r = D.xe("host-list", "--minimal")
    assert len(r.stdout.strip()) == 36


def test_concurrent_writers():
    s, sess = D.login()
    errors = []

    def worker(i):
        try:
            p, ss = D.xmlrpc(), sess
            for k in range(20):
                ok(p.pool.add_to_other_config(ss, ok(p.pool.get_all(ss))[0], "w%d-%d" % (i, k),
                                              "v"))
        except Exception as e:  # noqa
            errors.append(e)
    ths = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert not errors, errors
    pool = ok(s.pool.get_all(sess))[0]
    oc = ok(s.pool.get_other_config(sess, pool))
    assert len([k for k in oc if k.startswith("w")]) == 160


def main():
    global D
    with Daemon() as d:
        D = d
        run_tests([test_malformed_xml_and_json, test_wrong_types_and_unknown_methods,
                   test_body_limit, test_slow_clients_do_not_block_others,
                   test_thousand_idle_connections, test_concurrent_writers,
                   test_failed_logins_are_rate_limited])


if __name__ == "__main__":
    main()
