"""Shared helpers for the benchmarks: a daemon from the build directory
(tests/integration/hxtest.py) and a uniform way to print a figure beside
its baseline."""

import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("HX_BUILD_DIR", os.path.join(TOP, "build"))
os.environ.setdefault("HYPERXED", os.path.join(BUILD, "src", "daemon", "hyperxed"))
os.environ.setdefault("XE", os.path.join(BUILD, "src", "cli", "xe"))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

import hxtest  # noqa: E402,F401


def report(name, value, unit, baseline_name, baseline, target=None):
    """One line per figure: the value, its baseline from the same run, the ratio."""
    ratio = value / baseline if baseline else float("nan")
    line = "%-44s %12.2f %-8s | %-34s %12.2f %-8s | ratio %.2f" % (
        name, value, unit, baseline_name, baseline, unit, ratio)
    if target:
        line += " | target %s" % target
    print(line)
    sys.stdout.flush()


def create_vms(d, n):
    """Creates n halted VM records directly through the API."""
    from t_api_sdk import vm_record
    s, sess = d.login()
    for i in range(n):
        r = s.VM.create(sess, vm_record("bench-vm-%04d" % i))
        assert r["Status"] == "Success", r
    return s, sess
