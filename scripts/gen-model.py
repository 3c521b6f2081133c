#!/usr/bin/env python3
"""Generates the C object model from the declarations in schema/.

The schema files are Python: each calls the functions below (klass, field,
message, enum, error, cli, ...). From them this script writes

  model-gen.h / model-gen.c   type, enum, class, field, message and error
                              tables, and one typed constructor per error
  ops-gen.h                   the prototype of every ops function a declared
                              message needs (src/ops/<class>.c implements it)
  dispatch-gen.c              wrappers that unpack checked arguments and call
                              those ops functions (used by src/api/)

Usage: gen-model.py SCHEMA_DIR OUT_DIR
Nothing here is compiled into hyperxe; it only writes C.
"""

import os
import re
import sys

RO_RUNTIME = "RO_RUNTIME"
RO_CONSTRUCTOR = "RO_CONSTRUCTOR"
RW = "RW"

ROLES = ["read-only", "vm-operator", "vm-admin", "vm-power-admin", "pool-operator", "pool-admin"]


class Type:
    def __init__(self, spelling):
        self.spelling = spelling
        s = spelling.strip()
        self.key = self.elem = None
        self.enum = self.cls = None
        m = re.match(r"^\((.+?) -> (.+)\) map$", s)
        if m:
            self.kind = "MAP"
            self.key = parse_type(m.group(1))
            self.elem = parse_type(m.group(2))
        elif s.endswith(" set"):
            self.kind = "SET"
            self.elem = parse_type(s[:-4])
        elif s.endswith(" ref"):
            self.kind = "REF"
            self.cls = s[:-4]
        elif s.endswith(" record"):
            self.kind = "RECORD"
            self.cls = s[:-7]
        elif s == "struct":
            self.kind = "RECORD"
        elif s.startswith("enum "):
            self.kind = "ENUM"
            self.enum = s[5:]
        elif s in ("string", "int", "float", "bool", "datetime", "void"):
            self.kind = s.upper()
        else:
            raise SystemExit("unknown type %r" % spelling)
        self.cname = None


TYPES = {}


def parse_type(s):
    s = s.strip()
    if s not in TYPES:
        TYPES[s] = Type(s)
    return TYPES[s]


class Field:
    pass


class Param:
    pass


class Message:
    pass


class Klass:
    def __init__(self, name, create, destroy, persist, cli, create_role, destroy_role, hooks):
        self.name = name
        self.create = create
        self.destroy = destroy
        self.persist = persist
        self.cli = cli
        self.create_role = create_role
        self.destroy_role = destroy_role
        self.hooks = hooks
        self.fields = []
        self.messages = []
        self.cli_fields = []
        self.cli_views = []


CLASSES = []
ENUMS = {}
ENUM_DISPLAY = {}
ERRORS = []
CUR = [None]


def klass(name, create=False, destroy=False, persist=True, cli=None, create_role="vm-admin",
          destroy_role="vm-admin", hooks=(), implicit=True):
    k = Klass(name, create, destroy, persist, cli, create_role, destroy_role, set(hooks))
    k.implicit = implicit
    CLASSES.append(k)
    CUR[0] = k


def field(name, typ, qual, default=None, write_role="vm-admin", inverse=None, setter=None,
          persist=True, hidden=False):
    f = Field()
    f.name = name
    f.type = parse_type(typ)
    f.qual = qual
    f.default = default
    f.write_role = write_role
    f.inverse = inverse
    f.setter = setter  # None, "generic" or "custom"
    f.persist = persist and inverse is None
    f.hidden = hidden
    CUR[0].fields.append(f)


def message(name, result, *params, role="vm-admin", async_=True, session=True, doc="",
            defaults=None, layer="ops", hidden=False):
    m = Message()
    m.layer = layer
    m.hidden = hidden
    m.name = name
    m.result = parse_type(result)
    m.params = []
    defaults = defaults or {}
    for t, n in params:
        p = Param()
        p.type = parse_type(t)
        p.name = n
        p.default = defaults.get(n)
        m.params.append(p)
    m.role = role
    m.async_ = async_
    m.session = session
    m.doc = doc
    m.klass = CUR[0]
    CUR[0].messages.append(m)


def enum(name, *values, display=None):
    ENUMS[name] = list(values)
    if display:
        ENUM_DISPLAY[name] = display


def error(code, *params, doc=""):
    ERRORS.append((code, list(params), doc))


def cli(*specs):
    """CLI record of the current class, in the order xe prints it. Each spec is
    'cli-name=source[!flags]' where source is a field, a ref field followed by
    '.field' of the referenced object, or '@name' for a value the CLI computes;
    flags: h hidden, e expensive, d deprecated, M/S for computed maps/sets,
    w writable computed field, r read-only in xe although the API can set it,
    p tagged as a plain field although it is a set or map (as xe does)."""
    CUR[0].cli_fields.extend(specs)


def cli_view(name, filters="", columns=""):
    """An xe class name for the current class: '<name>-list' etc. filters are
    default 'field=value' filters, columns the default list columns."""
    CUR[0].cli_views.append((name, filters, columns))


def c_ident(s):
    return re.sub(r"[^A-Za-z0-9]", "_", s)


def upper(s):
    return c_ident(s).upper()


def load(schema_dir):
    ns = {k: v for k, v in globals().items() if k in (
        "klass", "field", "message", "enum", "error", "cli", "cli_view",
        "RO_RUNTIME", "RO_CONSTRUCTOR", "RW")}
    files = sorted(f for f in os.listdir(schema_dir) if f.endswith(".py"))
    # enums and errors first so classes can refer to them
    files.sort(key=lambda f: (f not in ("enums.py", "errors.py"), f))
    for f in files:
        CUR[0] = None
        path = os.path.join(schema_dir, f)
        with open(path) as fh:
            exec(compile(fh.read(), path, "exec"), dict(ns))


def check():
    names = {k.name for k in CLASSES}
    for t in TYPES.values():
        if t.kind in ("REF", "RECORD") and t.cls is not None and t.cls not in names:
            raise SystemExit("type %s refers to unknown class" % t.spelling)
        if t.kind == "ENUM" and t.enum not in ENUMS:
            raise SystemExit("unknown enum %s" % t.enum)
    for k in CLASSES:
        fnames = [f.name for f in k.fields]
        if fnames[0] != "uuid":
            raise SystemExit("%s: the first field must be uuid" % k.name)
        if len(set(fnames)) != len(fnames):
            raise SystemExit("%s: duplicate field" % k.name)
        for f in k.fields:
            if f.inverse:
                c, fld = f.inverse.split(".")
                kc = [x for x in CLASSES if x.name == c]
                if not kc or fld not in [x.name for x in kc[0].fields]:
                    raise SystemExit("%s.%s: bad inverse %s" % (k.name, f.name, f.inverse))
        for m in k.messages:
            if m.role not in ROLES:
                raise SystemExit("%s.%s: bad role" % (k.name, m.name))


def type_cname(t):
    return "xs_type_" + c_ident(t.spelling).strip("_").lower().replace("__", "_")


def default_literal(f):
    if f.default is None:
        return "NULL"
    return c_str(f.default)


def c_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def class_id(k):
    return "XS_CLASS_" + upper(k.name)


def field_id(k, f):
    return "F_%s_%s" % (upper(k.name), upper(f.name))


def ops_fn(m):
    return "%s_%s_%s" % (m.layer, c_ident(m.klass.name).lower(), m.name)


def c_arg_type(t):
    return {
        "STRING": "const char *", "REF": "const char *", "DATETIME": "int64_t ",
        "INT": "int64_t ", "FLOAT": "double ", "BOOL": "bool ", "ENUM": "int ",
    }.get(t.kind, "const XsValue *")


def c_ret_type(t):
    return {
        "STRING": "char **", "REF": "char **", "DATETIME": "int64_t *", "INT": "int64_t *",
        "FLOAT": "double *", "BOOL": "bool *", "ENUM": "int *",
    }.get(t.kind, "XsValue **")


def ops_proto(m):
    args = ["OpsCtx *ctx"]
    for p in m.params:
        args.append(c_arg_type(p.type) + p.name)
    if m.result.kind != "VOID":
        args.append(c_ret_type(m.result) + "ret")
    args.append("XsError **errp")
    return "bool %s(%s)" % (ops_fn(m), ", ".join(args))


def all_messages():
    msgs = []
    for k in CLASSES:
        for m in k.messages:
            msgs.append(m)
    msgs.sort(key=lambda m: "%s.%s" % (m.klass.name, m.name))
    return msgs


def parse_cli_spec(k, spec):
    flags = ""
    if "!" in spec:
        spec, flags = spec.split("!", 1)
    name, _, src = spec.partition("=")
    if not src:
        src = name.replace("-", "_")
    fnames = {f.name: i for i, f in enumerate(k.fields)}
    out = {"name": name, "flags": flags, "field": -1, "target_class": None, "target_field": -1,
           "computed": None}
    if src.startswith("@"):
        out["computed"] = src[1:]
        return out
    if "." in src:
        via, tgt = src.split(".", 1)
        if via not in fnames:
            raise SystemExit("cli %s.%s: unknown field %s" % (k.name, name, via))
        vf = k.fields[fnames[via]]
        if vf.type.kind != "REF":
            raise SystemExit("cli %s.%s: %s is not a ref" % (k.name, name, via))
        tk = [x for x in CLASSES if x.name == vf.type.cls][0]
        tf = {f.name: i for i, f in enumerate(tk.fields)}
        if tgt not in tf:
            raise SystemExit("cli %s.%s: unknown field %s.%s" % (k.name, name, tk.name, tgt))
        out["field"] = fnames[via]
        out["target_class"] = tk
        out["target_field"] = tf[tgt]
        return out
    if src not in fnames:
        raise SystemExit("cli %s.%s: unknown field %s" % (k.name, name, src))
    out["field"] = fnames[src]
    return out


def gen(out_dir):
    msgs = all_messages()
    h = []
    w = h.append
    w("/* Generated by scripts/gen-model.py from schema/. Do not edit. */")
    w("#ifndef HX_MODEL_GEN_H")
    w("#define HX_MODEL_GEN_H")
    w('#include "model/schema.h"')
    w("")
    w("typedef enum {")
    for k in CLASSES:
        w("    %s," % class_id(k))
    w("    XS_CLASS__MAX,")
    w("} XsClassId;")
    w("")
    for k in CLASSES:
        w("enum {")
        for f in k.fields:
            w("    %s," % field_id(k, f))
        w("    F_%s__MAX," % upper(k.name))
        w("};")
    w("")
    for name, vals in sorted(ENUMS.items()):
        w("typedef enum {")
        for v in vals:
            w("    %s_%s," % (upper(name), upper(v)))
        w("    %s__MAX," % upper(name))
        w("} Xs_%s;" % c_ident(name))
        w("extern const XsEnum xs_enum_%s;" % c_ident(name))
    w("")
    for t in sorted(TYPES.values(), key=lambda t: t.spelling):
        w("extern const XsType %s;" % type_cname(t))
    w("")
    for k in CLASSES:
        w("extern const XsClass xs_class_%s;" % c_ident(k.name))
    w("extern const XsClass *const xs_classes[XS_CLASS__MAX];")
    w("extern const XsMessage xs_messages[];")
    w("extern const size_t xs_nmessages;")
    w("extern const XsErrorDef xs_error_defs[];")
    w("extern const size_t xs_nerror_defs;")
    w("extern const XsEnum *const xs_enums[];")
    w("extern const size_t xs_nenums;")
    w("")
    for code, params, doc in ERRORS:
        args = "".join(", const char *%s" % c_ident(p) for p in params)
        w("void xs_err_%s(XsError **errp%s);" % (code.lower(), args))
    w("")
    w("#endif")
    with open(os.path.join(out_dir, "model-gen.h"), "w") as fh:
        fh.write("\n".join(h) + "\n")

    c = []
    w = c.append
    w("/* Generated by scripts/gen-model.py from schema/. Do not edit. */")
    w("#include <stddef.h>")
    w('#include "model-gen.h"')
    w("")
    for name, vals in sorted(ENUMS.items()):
        disp = ENUM_DISPLAY.get(name)
        w("static const char *const enum_%s_values[] = {%s};" % (
            c_ident(name), ", ".join(c_str(v) for v in vals)))
        if disp:
            w("static const char *const enum_%s_display[] = {%s};" % (
                c_ident(name), ", ".join(c_str(disp.get(v, v)) for v in vals)))
        w("const XsEnum xs_enum_%s = {%s, %d, enum_%s_values, %s};" % (
            c_ident(name), c_str(name), len(vals), c_ident(name),
            ("enum_%s_display" % c_ident(name)) if disp else "NULL"))
    w("const XsEnum *const xs_enums[] = {%s};" % ", ".join(
        "&xs_enum_%s" % c_ident(n) for n in sorted(ENUMS)))
    w("const size_t xs_nenums = %d;" % len(ENUMS))
    w("")
    # types: emit in dependency order
    done = set()

    def emit_type(t):
        if t.spelling in done:
            return
        for sub in (t.key, t.elem):
            if sub:
                emit_type(sub)
        done.add(t.spelling)
        ref = lambda x: "&" + type_cname(x) if x else "NULL"
        cls = class_id([k for k in CLASSES if k.name == t.cls][0]) if t.cls else "-1"
        en = "&xs_enum_%s" % c_ident(t.enum) if t.enum else "NULL"
        w("const XsType %s = {XS_T_%s, %s, %s, %s, %s, %s};" % (
            type_cname(t), t.kind, c_str(t.spelling), ref(t.key), ref(t.elem), en, cls))

    for t in sorted(TYPES.values(), key=lambda t: t.spelling):
        emit_type(t)
    w("")
    for k in CLASSES:
        ci = c_ident(k.name)
        w("static const XsField fields_%s[] = {" % ci)
        for f in k.fields:
            inv_c, inv_f = "-1", "-1"
            if f.inverse:
                cn, fn = f.inverse.split(".")
                kk = [x for x in CLASSES if x.name == cn][0]
                inv_c = class_id(kk)
                inv_f = field_id(kk, [x for x in kk.fields if x.name == fn][0])
            flags = []
            if f.inverse:
                flags.append("XS_FIELD_DERIVED")
            if not f.persist:
                flags.append("XS_FIELD_NOPERSIST")
            if f.setter:
                flags.append("XS_FIELD_SETTER")
            if f.setter == "custom":
                flags.append("XS_FIELD_SETTER_CUSTOM")
            if f.hidden:
                flags.append("XS_FIELD_HIDDEN")
            w("    {%s, &%s, XS_QUAL_%s, %s, XS_ROLE_%s, %s, %s, %s}," % (
                c_str(f.name), type_cname(f.type), f.qual, default_literal(f),
                upper(f.write_role), inv_c, inv_f, " | ".join(flags) or "0"))
        w("};")
        if k.cli_fields:
            w("static const XsCliField cli_%s[] = {" % ci)
            for spec in k.cli_fields:
                p = parse_cli_spec(k, spec)
                flags = []
                for ch, fl in (("h", "XS_CLI_HIDDEN"), ("e", "XS_CLI_EXPENSIVE"),
                               ("d", "XS_CLI_DEPRECATED"), ("M", "XS_CLI_MAP"),
                               ("S", "XS_CLI_SET"), ("w", "XS_CLI_WRITABLE"),
                               ("r", "XS_CLI_READONLY"), ("p", "XS_CLI_PLAIN")):
                    if ch in p["flags"]:
                        flags.append(fl)
                w("    {%s, %d, %s, %d, %s, %s}," % (
                    c_str(p["name"]), p["field"],
                    class_id(p["target_class"]) if p["target_class"] else "-1",
                    p["target_field"], c_str(p["computed"]) if p["computed"] else "NULL",
                    " | ".join(flags) or "0"))
            w("};")
        if k.cli_views:
            w("static const XsCliView views_%s[] = {" % ci)
            for name, filters, columns in k.cli_views:
                w("    {%s, %s, %s}," % (c_str(name), c_str(filters), c_str(columns)))
            w("};")
    w("")
    for k in CLASSES:
        ci = c_ident(k.name)
        name_label = -1
        for i, f in enumerate(k.fields):
            if f.name == "name_label":
                name_label = i
        flags = []
        if k.create:
            flags.append("XS_CLASS_HAS_CREATE")
        if k.destroy:
            flags.append("XS_CLASS_HAS_DESTROY")
        if k.persist:
            flags.append("XS_CLASS_PERSIST")
        if k.implicit:
            flags.append("XS_CLASS_IMPLICIT")
        for hk in sorted(k.hooks):
            flags.append("XS_CLASS_HOOK_" + hk.upper())
        w("const XsClass xs_class_%s = {%s, %s, %s, fields_%s, %d, %d, XS_ROLE_%s, XS_ROLE_%s, %s, "
          "%s, %d, %s, %d};" % (
              ci, c_str(k.name), c_str(k.name.lower()), class_id(k), ci, len(k.fields), name_label,
              upper(k.create_role), upper(k.destroy_role), " | ".join(flags) or "0",
              ("cli_%s" % ci) if k.cli_fields else "NULL", len(k.cli_fields),
              ("views_%s" % ci) if k.cli_views else "NULL", len(k.cli_views)))
    w("const XsClass *const xs_classes[XS_CLASS__MAX] = {%s};" % ", ".join(
        "&xs_class_%s" % c_ident(k.name) for k in CLASSES))
    w("")
    for i, m in enumerate(msgs):
        if m.params:
            w("static const XsParam params_%d[] = {%s};" % (i, ", ".join(
                "{%s, &%s, %s}" % (c_str(p.name), type_cname(p.type),
                                   c_str(p.default) if p.default is not None else "NULL")
                for p in m.params)))
    w("const XsMessage xs_messages[] = {")
    for i, m in enumerate(msgs):
        nreq = len([p for p in m.params if p.default is None])
        flags = []
        if m.async_:
            flags.append("XS_MSG_ASYNC")
        if not m.session:
            flags.append("XS_MSG_NO_SESSION")
        if m.hidden:
            flags.append("XS_MSG_HIDDEN")
        w("    {%s, %s, %s, %s, %d, %d, &%s, XS_ROLE_%s, %s, %s}," % (
            c_str("%s.%s" % (m.klass.name, m.name)), c_str(m.name), class_id(m.klass),
            ("params_%d" % i) if m.params else "NULL", len(m.params), nreq,
            type_cname(m.result), upper(m.role), " | ".join(flags) or "0", c_str(m.doc)))
    w("};")
    w("const size_t xs_nmessages = %d;" % len(msgs))
    w("")
    for code, params, doc in ERRORS:
        w("static const char *const errp_%s[] = {%s};" % (
            code.lower(), ", ".join(c_str(p) for p in params) or "NULL"))
    w("const XsErrorDef xs_error_defs[] = {")
    for code, params, doc in sorted(ERRORS):
        w("    {%s, errp_%s, %d, %s}," % (c_str(code), code.lower(), len(params), c_str(doc)))
    w("};")
    w("const size_t xs_nerror_defs = %d;" % len(ERRORS))
    w("")
    for code, params, doc in ERRORS:
        args = "".join(", const char *%s" % c_ident(p) for p in params)
        w("void xs_err_%s(XsError **errp%s)" % (code.lower(), args))
        w("{")
        w("    xs_error_set(errp, %s, %d%s);" % (
            c_str(code), len(params), "".join(", " + c_ident(p) for p in params)))
        w("}")
    with open(os.path.join(out_dir, "model-gen.c"), "w") as fh:
        fh.write("\n".join(c) + "\n")

    o = []
    w = o.append
    w("/* Generated by scripts/gen-model.py from schema/. Do not edit. */")
    w("#ifndef HX_OPS_GEN_H")
    w("#define HX_OPS_GEN_H")
    w('#include "model-gen.h"')
    w("typedef struct OpsCtx OpsCtx;")
    w("typedef struct DbObj DbObj;")
    w("typedef struct DbTxn DbTxn;")
    w("")
    for m in msgs:
        w("%s;" % ops_proto(m))
    w("")
    for k in CLASSES:
        ci = c_ident(k.name).lower()
        for f in k.fields:
            if f.setter == "custom":
                w("bool ops_%s_set_%s(OpsCtx *ctx, const char *self, const XsValue *value, "
                  "XsError **errp);" % (ci, f.name))
        if "create" in k.hooks:
            w("bool ops_%s_create(OpsCtx *ctx, const XsValue *args, char **ret, XsError **errp);"
              % ci)
        if "destroy" in k.hooks:
            w("bool ops_%s_destroy(OpsCtx *ctx, const char *self, XsError **errp);" % ci)
        if "set" in k.hooks:
            w("/* Called inside the transaction of every generic setter of %s, after the" % k.name)
            w(" * new value is in place: may adjust other fields, or refuse. */")
            w("bool ops_%s_after_set(OpsCtx *ctx, DbTxn *txn, DbObj *obj, int field, "
              "XsError **errp);" % ci)
    w("#endif")
    with open(os.path.join(out_dir, "ops-gen.h"), "w") as fh:
        fh.write("\n".join(o) + "\n")

    d = []
    w = d.append
    w("/* Generated by scripts/gen-model.py from schema/. Do not edit. */")
    w("#include <stdlib.h>")
    w('#include "api/api.h"')
    w('#include "api/api-internal.h"')
    w('#include "util/xalloc.h"')
    w('#include "ops-gen.h"')
    w("")
    for i, m in enumerate(msgs):
        w("static bool wrap_%d(OpsCtx *ctx, XsValue *const *a, XsValue **result, XsError **errp)"
          % i)
        w("{")
        args = ["ctx"]
        for j, p in enumerate(m.params):
            k = p.type.kind
            if k in ("STRING", "REF"):
                args.append("a[%d]->s" % j)
            elif k in ("INT", "DATETIME"):
                args.append("a[%d]->i" % j)
            elif k == "FLOAT":
                args.append("a[%d]->f" % j)
            elif k == "BOOL":
                args.append("a[%d]->b" % j)
            elif k == "ENUM":
                args.append("xs_enum_index(&xs_enum_%s, a[%d]->s)" % (c_ident(p.type.enum), j))
            else:
                args.append("a[%d]" % j)
        rk = m.result.kind
        if rk == "VOID":
            w("    *result = NULL;")
        elif rk in ("STRING", "REF"):
            w("    char *r = NULL;")
            args.append("&r")
        elif rk in ("INT", "DATETIME"):
            w("    int64_t r = 0;")
            args.append("&r")
        elif rk == "FLOAT":
            w("    double r = 0;")
            args.append("&r")
        elif rk == "BOOL":
            w("    bool r = false;")
            args.append("&r")
        elif rk == "ENUM":
            w("    int r = 0;")
            args.append("&r")
        else:
            w("    XsValue *r = NULL;")
            args.append("&r")
        args.append("errp")
        w("    if (!%s(%s))" % (ops_fn(m), ", ".join(args)))
        if rk in ("STRING", "REF"):
            w("    {")
            w("        free(r);")
            w("        return false;")
            w("    }")
        elif rk in ("SET", "MAP", "RECORD"):
            w("    {")
            w("        xv_free(r);")
            w("        return false;")
            w("    }")
        else:
            w("        return false;")
        if rk in ("STRING", "REF"):
            w("    *result = xv_string_take(r ? r : xstrdup(\"\"));")
        elif rk == "INT":
            w("    *result = xv_int(r);")
        elif rk == "DATETIME":
            w("    *result = xv_datetime(r);")
        elif rk == "FLOAT":
            w("    *result = xv_float(r);")
        elif rk == "BOOL":
            w("    *result = xv_bool(r);")
        elif rk == "ENUM":
            w("    *result = xv_string(xs_enum_%s.values[r]);" % c_ident(m.result.enum))
        elif rk != "VOID":
            w("    *result = r;")
        w("    return true;")
        w("}")
    w("")
    w("const ApiHandler api_handlers[] = {%s};" % ", ".join("wrap_%d" % i for i in range(len(msgs))))
    w("")
    w("bool api_custom_setter(OpsCtx *ctx, const XsClass *cls, int field, const char *self,")
    w("                       const XsValue *value, XsError **errp)")
    w("{")
    w("    switch (cls->id * 1000 + field) {")
    for k in CLASSES:
        for i, f in enumerate(k.fields):
            if f.setter == "custom":
                w("    case %s * 1000 + %s:" % (class_id(k), field_id(k, f)))
                w("        return ops_%s_set_%s(ctx, self, value, errp);" % (
                    c_ident(k.name).lower(), f.name))
    w("    default:")
    w("        xs_err_not_implemented(errp, cls->fields[field].name);")
    w("        return false;")
    w("    }")
    w("}")
    for hook, sig, call in (
            ("create", "const XsValue *args, char **ret", "args, ret"),
            ("destroy", "const char *self", "self"),
            ("set", "DbTxn *txn, DbObj *obj, int field", "txn, obj, field")):
        fname = {"create": "api_create_hook", "destroy": "api_destroy_hook",
                 "set": "api_check_set_hook"}[hook]
        opsname = {"create": "create", "destroy": "destroy", "set": "after_set"}[hook]
        w("")
        w("bool %s(OpsCtx *ctx, const XsClass *cls, %s, XsError **errp)" % (fname, sig))
        w("{")
        w("    switch (cls->id) {")
        for k in CLASSES:
            if hook in k.hooks:
                w("    case %s:" % class_id(k))
                w("        return ops_%s_%s(ctx, %s, errp);" % (
                    c_ident(k.name).lower(), opsname, call))
        w("    default:")
        w("        xs_err_not_implemented(errp, cls->name);")
        w("        return false;")
        w("    }")
        w("}")
    with open(os.path.join(out_dir, "dispatch-gen.c"), "w") as fh:
        fh.write("\n".join(d) + "\n")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    load(sys.argv[1])
    check()
    gen(sys.argv[2])


if __name__ == "__main__":
    main()
