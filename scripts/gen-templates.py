#!/usr/bin/env python3
"""Turns the built-in VM templates of data/templates/*.json into C.

Each data file holds "bases" (shared settings, by name) or "templates"
(uuid, reference_label, name_label and what differs), each of which may be
"derived_from" a base. This script resolves the inheritance and writes one
JSON object per template with XenAPI field names and values, ready to
become a VM record:

  memory        static_min = min_memory, the other limits 2 x min_memory
                (XenServer's rule); the recommendations carry max_memory
                and rec_min_memory (default min_memory) as the supported range
  boot          "hvm": HVM_boot_policy "BIOS order" and HVM_boot_params;
                "pv": PV_bootloader and PV_args
  disks         other_config:disks, the provisioning XML vm-install uses
  platform      nx, acpi, apic, pae, hpet on unless the template says
  recommendations  the <restrictions> XML of XenServer's templates

Usage: gen-templates.py OUT.c DATA.json...
Nothing here is compiled into hyperxe; it only writes C.
"""

import json
import os
import re
import sys

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def amount(s):
    m = re.fullmatch(r"(\d+)([KMGT])", str(s))
    if not m:
        raise SystemExit("bad amount %r (use e.g. 512M, 8G)" % s)
    return int(m.group(1)) * UNITS[m.group(2)]


def merge(base, over):
    out = dict(base)
    for k, v in over.items():
        if k in ("other_config", "platform", "HVM_boot_params") and k in out:
            d = dict(out[k])
            d.update(v)
            out[k] = d
        else:
            out[k] = v
    return out


def resolve(entry, bases, seen=()):
    parent = entry.get("derived_from")
    if not parent:
        return dict(entry)
    if parent in seen or parent not in bases:
        raise SystemExit("bad derived_from %r" % parent)
    base = resolve(bases[parent], bases, seen + (parent,))
    base.pop("derived_from", None)
    own = dict(entry)
    own.pop("derived_from")
    return merge(base, own)


def disks_xml(disks):
    if not disks:
        return None
    parts = []
    for i, d in enumerate(disks):
        parts.append('<disk device="%d" size="%d" sr="" bootable="%s" type="%s"/>' % (
            i, amount(d["size"]), "true" if d.get("bootable", True) else "false",
            d.get("type", "system")))
    return "<provision>" + "".join(parts) + "</provision>"


def recommendations(t):
    r = ['<restrictions>']
    if "max_memory" in t:
        r.append('<restriction field="memory-static-max" max="%d"/>' % amount(t["max_memory"]))
    rec_min = t.get("rec_min_memory", t.get("min_memory"))
    if rec_min:
        r.append('<restriction field="memory-static-min" min="%d"/>' % amount(rec_min))
    if "rec_vcpus_max" in t:
        r.append('<restriction field="vcpus-max" max="%d"/>' % t["rec_vcpus_max"])
    r.append('<restriction field="has-vendor-device" value="%s"/>' % (
        "true" if t.get("has_vendor_device") else "false"))
    if "number_of_vbds" in t:
        r.append('<restriction property="number-of-vbds" max="%d"/>' % t["number_of_vbds"])
    if "number_of_vifs" in t:
        r.append('<restriction property="number-of-vifs" max="%d"/>' % t["number_of_vifs"])
    r.append('</restrictions>')
    return "".join(r)


def record(t):
    for k in ("uuid", "reference_label", "name_label", "boot", "min_memory"):
        if k not in t:
            raise SystemExit("template %s lacks %s" % (t.get("name_label", "?"), k))
    mem = amount(t["min_memory"])
    hvm = t["boot"] == "hvm"
    platform = {"nx": "true", "acpi": "1", "apic": "true", "pae": "true", "hpet": "true"}
    platform.update(t.get("platform", {}))
    oc = dict(t.get("other_config", {}))
    d = disks_xml(t.get("disks"))
    if d:
        oc["disks"] = d
    vcpus = int(t.get("vcpus", 1))
    return {
        "uuid": t["uuid"],
        "reference_label": t["reference_label"],
        "name_label": t["name_label"],
        "name_description": t.get("name_description", ""),
        "user_version": 1,
        "is_a_template": True,
        "memory_static_min": mem,
        "memory_static_max": 2 * mem,
        "memory_dynamic_min": 2 * mem,
        "memory_dynamic_max": 2 * mem,
        "VCPUs_max": vcpus,
        "VCPUs_at_startup": vcpus,
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "restart",
        "HVM_boot_policy": "BIOS order" if hvm else "",
        "HVM_boot_params": t.get("HVM_boot_params", {}) if hvm else {},
        "HVM_shadow_multiplier": float(t.get("HVM_shadow_multiplier", 1.0)),
        "domain_type": "hvm" if hvm else "pv",
        "PV_bootloader": "" if hvm else t.get("PV_bootloader", ""),
        "PV_args": "" if hvm else t.get("PV_args", ""),
        "platform": platform,
        "other_config": oc,
        "recommendations": recommendations(t),
    }


def c_string(s):
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) > 0x7e:
            out.append("\\%03o" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def main():
    if len(sys.argv) < 3:
        raise SystemExit("usage: gen-templates.py OUT.c DATA.json...")
    bases, entries = {}, []
    for path in sys.argv[2:]:
        with open(path) as f:
            data = json.load(f)
        bases.update(data.get("bases", {}))
        entries.extend(data.get("templates", []))
    recs = [record(resolve(e, bases)) for e in entries]
    seen = set()
    for r in recs:
        for k in ("uuid", "name_label"):
            if r[k] in seen:
                raise SystemExit("duplicate template %s %r" % (k, r[k]))
            seen.add(r[k])
    recs.sort(key=lambda r: r["name_label"])
    with open(sys.argv[1] + ".tmp", "w") as out:
        out.write("/* Generated by scripts/gen-templates.py from data/templates/. Do not edit. */\n")
        out.write("#include <stddef.h>\n\n")
        out.write("extern const char *const ops_templates_json[];\n")
        out.write("extern const size_t ops_templates_count;\n\n")
        out.write("const char *const ops_templates_json[] = {\n")
        for r in recs:
            out.write("    %s,\n" % c_string(json.dumps(r, sort_keys=True)))
        out.write("};\n")
        out.write("const size_t ops_templates_count = %d;\n" % len(recs))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])


if __name__ == "__main__":
    main()
