#!/usr/bin/env python3
"""State survives a clean restart and a SIGKILL; a task running at the
crash is failed with a clear error after the restart; a full disk under
the database gives INTERNAL_ERROR without losing committed state."""

import os
import signal
import subprocess

from hxtest import Daemon, fails, ok, run_tests
from t_api_sdk import vm_record

D = None


def test_survives_restart_and_sigkill():
    s, sess = D.login()
    vm = ok(s.VM.create(sess, vm_record("persistent")))
    ok(s.VM.add_to_other_config(sess, vm, "colour", "green"))
    uuid = ok(s.VM.get_uuid(sess, vm))
    host_uuid = ok(s.host.get_uuid(sess, ok(s.host.get_all(sess))[0]))
    D.restart()
    s, sess = D.login()
    vm = ok(s.VM.get_by_uuid(sess, uuid))
    assert ok(s.VM.get_other_config(sess, vm)) == {"colour": "green"}
    ok(s.VM.set_name_label(sess, vm, "after-restart"))
    D.restart(signal.SIGKILL)
    s, sess = D.login()
    vm = ok(s.VM.get_by_uuid(sess, uuid))
    assert ok(s.VM.get_name_label(sess, vm)) == "after-restart"
    # nothing was duplicated by the restarts
    assert ok(s.host.get_uuid(sess, ok(s.host.get_all(sess))[0])) == host_uuid
    assert len(ok(s.host.get_all(sess))) == 1 and len(ok(s.pool.get_all(sess))) == 1
    srs = [r["name_label"] for r in ok(s.SR.get_all_records(sess)).values()]
    assert sorted(srs) == ["DVD drives", "Local storage", "hyperxe Tools"], srs


def test_running_task_failed_after_crash():
    s, sess = D.login()
    t = ok(s.task.create(sess, "long job", ""))
    D.restart(signal.SIGKILL)
    s, sess = D.login()
    assert ok(s.task.get_status(sess, t)) == "failure"
    info = ok(s.task.get_error_info(sess, t))
    assert info[0] == "INTERNAL_ERROR" and "restarted" in info[1], info
    assert ok(s.task.get_finished(sess, t))
    # sessions do not survive a restart
    fails(s.VM.get_all("OpaqueRef:" + "0" * 8), "SESSION_INVALID")


def test_disk_full_keeps_committed_state():
    if os.geteuid() != 0:
        print("# skipped: needs root to mount a tmpfs")
        return
    mnt = os.path.join(D.tmp, "small")
    os.makedirs(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt], check=True)
    try:
        with Daemon(state_dir=os.path.join(mnt, "state")) as d:
            s, sess = d.login()
            pool = ok(s.pool.get_all(sess))[0]
            ok(s.pool.add_to_other_config(sess, pool, "before", "yes"))
            filler = os.path.join(mnt, "filler")
            subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=64k"],
                           capture_output=True)
            failed = 0
            for i in range(50):
                r = s.pool.add_to_other_config(sess, pool, "k%d" % i, "x" * 20000)
                if r["Status"] == "Failure":
                    assert r["ErrorDescription"][0] == "INTERNAL_ERROR", r
                    failed += 1
            assert failed > 0
            oc = ok(s.pool.get_other_config(sess, pool))
            assert oc["before"] == "yes"
            os.unlink(filler)
            ok(s.pool.add_to_other_config(sess, pool, "after", "yes"))
            kept = ok(s.pool.get_other_config(sess, pool))
            d.restart()
            s, sess = d.login()
            assert ok(s.pool.get_other_config(sess, pool)) == kept
    finally:
        subprocess.run(["umount", "-l", mnt])


def main():
    global D
    with Daemon() as d:
        D = d
        run_tests([test_survives_restart_and_sigkill, test_running_task_failed_after_crash,
                   test_disk_full_keeps_committed_state])


if __name__ == "__main__":
    main()
