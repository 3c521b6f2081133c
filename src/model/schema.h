/*
 * The shapes of the object model's tables: types, enums, classes, fields,
 * messages, errors and CLI records. The tables themselves are generated from
 * schema/ into model-gen.c (scripts/gen-model.py); this header only defines
 * their structure and the lookups over them. Pure data: no I/O, no state.
 */
#ifndef HX_MODEL_SCHEMA_H
#define HX_MODEL_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/value.h"
#include "util/error.h"

typedef enum {
    XS_T_STRING,
    XS_T_INT,
    XS_T_FLOAT,
    XS_T_BOOL,
    XS_T_DATETIME,
    XS_T_ENUM,
    XS_T_REF,
    XS_T_SET,
    XS_T_MAP,
    XS_T_RECORD,
    XS_T_VOID,
    XS_T__MAX,
} XsTypeKind;

typedef struct XsEnum {
    const char *name;
    size_t n;
    const char *const *values;
    /* How xe prints each value (NULL: as on the wire). */
    const char *const *display;
} XsEnum;

typedef struct XsType XsType;
struct XsType {
    XsTypeKind kind;
    const char *spelling; /* as XenAPI writes it: "(string -> string) map" */
    const XsType *key;    /* map key */
    const XsType *elem;   /* set element, map value */
    const XsEnum *enumt;
    int cls; /* ref/record: XsClassId; else -1 */
};

typedef enum {
    XS_QUAL_RO_RUNTIME,
    XS_QUAL_RO_CONSTRUCTOR,
    XS_QUAL_RW,
} XsQualifier;

/* Roles in increasing order of privilege; a role includes those below it. */
typedef enum {
    XS_ROLE_READ_ONLY,
    XS_ROLE_VM_OPERATOR,
    XS_ROLE_VM_ADMIN,
    XS_ROLE_VM_POWER_ADMIN,
    XS_ROLE_POOL_OPERATOR,
    XS_ROLE_POOL_ADMIN,
    XS_ROLE__MAX,
} XsRole;

enum {
    XS_FIELD_DERIVED = 1 << 0,       /* a ref set computed from another class's ref field */
    XS_FIELD_NOPERSIST = 1 << 1,     /* kept in memory only */
    XS_FIELD_SETTER = 1 << 2,        /* an explicit set_<field> message exists */
    XS_FIELD_SETTER_CUSTOM = 1 << 3, /* ... implemented in ops/ */
    XS_FIELD_HIDDEN = 1 << 4,        /* not part of get_record */
};

typedef struct XsField {
    const char *name;
    const XsType *type;
    XsQualifier qual;
    const char *default_literal; /* XenAPI datamodel spelling; NULL: no default */
    XsRole write_role;
    int inverse_class; /* derived fields: the class holding the forward ref */
    int inverse_field; /* ... and its ref field */
    unsigned flags;
} XsField;

enum {
    XS_CLI_HIDDEN = 1 << 0,
    XS_CLI_EXPENSIVE = 1 << 1,
    XS_CLI_DEPRECATED = 1 << 2,
    XS_CLI_MAP = 1 << 3,
    XS_CLI_SET = 1 << 4,
    XS_CLI_WRITABLE = 1 << 5,
    XS_CLI_READONLY = 1 << 6, /* xe cannot set it, although the API can */
    XS_CLI_PLAIN = 1 << 7,    /* tagged ( RO) although it is a set or map */
};

/* One line of an xe record: a field, a field of a referenced object, or a
 * value the CLI computes (computed != NULL). */
typedef struct XsCliField {
    const char *name;
    int field;
    int target_class;
    int target_field;
    const char *computed;
    unsigned flags;
} XsCliField;

typedef struct XsCliView {
    const char *name;    /* "vm", "template", "snapshot" */
    const char *filters; /* "is-a-template=false" */
    const char *columns; /* default columns of <name>-list */
} XsCliView;

enum {
    XS_CLASS_HAS_CREATE = 1 << 0,
    XS_CLASS_HAS_DESTROY = 1 << 1,
    XS_CLASS_PERSIST = 1 << 2,
    XS_CLASS_HOOK_CREATE = 1 << 3,
    XS_CLASS_HOOK_DESTROY = 1 << 4,
    XS_CLASS_HOOK_SET = 1 << 5,
    XS_CLASS_IMPLICIT = 1 << 6, /* has the implicit get_all, get_record, ... messages */
};

typedef struct XsClass {
    const char *name;  /* "VM" */
    const char *lname; /* "vm": event class names */
    int id;
    const XsField *fields;
    size_t nfields;
    int name_label_field; /* -1 if none */
    XsRole create_role;
    XsRole destroy_role;
    unsigned flags;
    const XsCliField *cli_fields;
    size_t ncli_fields;
    const XsCliView *cli_views;
    size_t ncli_views;
} XsClass;

typedef struct XsParam {
    const char *name;
    const XsType *type;
    const char *default_literal; /* NULL: required */
} XsParam;

enum {
    XS_MSG_ASYNC = 1 << 0,      /* may be called as Async.<Class>.<name> */
    XS_MSG_NO_SESSION = 1 << 1, /* takes no session (login) */
    XS_MSG_HIDDEN = 1 << 2,     /* not listed by system.listMethods (test facilities) */
};

typedef struct XsMessage {
    const char *wire_name; /* "VM.start" */
    const char *name;      /* "start" */
    int cls;
    const XsParam *params;
    size_t nparams;
    size_t nrequired;
    const XsType *result;
    XsRole role;
    unsigned flags;
    const char *doc;
} XsMessage;

typedef struct XsErrorDef {
    const char *code;
    const char *const *params;
    size_t nparams;
    const char *doc;
} XsErrorDef;

/* Lookups over the generated tables. */
const XsClass *xs_class_by_name(const char *name);
/* Case-insensitive, for event subscriptions ("vm", "VM"). */
const XsClass *xs_class_by_name_ci(const char *name);
int xs_field_index(const XsClass *cls, const char *name);
const XsMessage *xs_message_find(const char *wire_name);
const XsErrorDef *xs_error_def(const char *code);
/* Index of value in e, or -1. */
int xs_enum_index(const XsEnum *e, const char *value);
const char *xs_role_name(XsRole r);
int xs_role_from_name(const char *name);

/* Parses a datamodel default literal ("\"\"", "{}", "false", "Null",
 * "19700101T00:00:00Z", "1.", "{\"a\" -> \"b\"}", ...) into a value of type t;
 * a NULL literal gives the type's zero value. */
XsValue *xs_default_value(const XsType *t, const char *literal);

/*
 * Checks v against t and returns a normalised copy (ints given as strings
 * become ints, datetimes become XV_DATETIME, enum and ref spellings are
 * checked). On mismatch sets FIELD_TYPE_ERROR [what] and returns NULL.
 */
XsValue *xs_value_coerce(const XsType *t, const XsValue *v, const char *what, XsError **errp);

/* The string form XenAPI uses for a scalar in where-expressions and map keys. */
char *xs_value_to_plain_string(const XsValue *v);

#endif
