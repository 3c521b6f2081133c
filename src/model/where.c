/*
 * Parser and evaluator for XenAPI's where-expressions. See where.h. A
 * recursive-descent parser over a tiny tokenizer; depth is bounded.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model/where.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

typedef enum { W_TRUE, W_FALSE, W_AND, W_OR, W_NOT, W_EQ, W_NE } WhereOp;

typedef struct Operand {
    bool is_field;
    char *text;
} Operand;

struct WhereExpr {
    WhereOp op;
    WhereExpr *a, *b;
    Operand l, r;
};

typedef struct Parser {
    const char *p;
    char *err;
    int depth;
} Parser;

static void skip_ws(Parser *ps)
{
    while (isspace((unsigned char)*ps->p))
        ps->p++;
}

static bool keyword(Parser *ps, const char *kw)
{
    skip_ws(ps);
    size_t n = strlen(kw);
    if (strncasecmp(ps->p, kw, n) == 0 && !isalnum((unsigned char)ps->p[n]) && ps->p[n] != '_') {
        ps->p += n;
        return true;
    }
    return false;
}

static bool punct(Parser *ps, const char *s)
{
    skip_ws(ps);
    size_t n = strlen(s);
    if (strncmp(ps->p, s, n) == 0) {
        ps->p += n;
        return true;
    }
    return false;
}

static void fail(Parser *ps, const char *msg)
{
    if (!ps->err)
        ps->err = xasprintf("%s at offset near '%.20s'", msg, ps->p);
}

static char *quoted(Parser *ps)
{
    skip_ws(ps);
    if (*ps->p != '"') {
        fail(ps, "expected a quoted string");
        return NULL;
    }
    ps->p++;
    StrBuf sb = STRBUF_INIT;
    while (*ps->p && *ps->p != '"') {
        if (*ps->p == '\\' && ps->p[1])
            ps->p++;
        strbuf_addch(&sb, *ps->p++);
    }
    if (*ps->p != '"') {
        strbuf_release(&sb);
        fail(ps, "unterminated string");
        return NULL;
    }
    ps->p++;
    return strbuf_detach(&sb, NULL);
}

static bool operand(Parser *ps, Operand *o)
{
    o->is_field = keyword(ps, "field");
    if (!o->is_field)
        keyword(ps, "literal");
    o->text = quoted(ps);
    return o->text != NULL;
}

static WhereExpr *new_expr(WhereOp op)
{
    WhereExpr *e = xnew0(WhereExpr, 1);
    e->op = op;
    return e;
}

static WhereExpr *parse_or(Parser *ps);

static WhereExpr *parse_factor(Parser *ps)
{
    if (++ps->depth > 100) {
        fail(ps, "expression nested too deeply");
        return NULL;
    }
    WhereExpr *e = NULL;
    if (keyword(ps, "not")) {
        WhereExpr *a = parse_factor(ps);
        if (a) {
            e = new_expr(W_NOT);
            e->a = a;
        }
    } else if (punct(ps, "(")) {
        e = parse_or(ps);
        if (e && !punct(ps, ")")) {
            fail(ps, "expected ')'");
            where_free(e);
            e = NULL;
        }
    } else if (keyword(ps, "true")) {
        e = new_expr(W_TRUE);
    } else if (keyword(ps, "false")) {
        e = new_expr(W_FALSE);
    } else {
        e = new_expr(W_EQ);
        if (!operand(ps, &e->l)) {
            where_free(e);
            e = NULL;
        } else {
            if (punct(ps, "<>"))
                e->op = W_NE;
            else if (!punct(ps, "=")) {
                fail(ps, "expected '=' or '<>'");
                where_free(e);
                e = NULL;
            }
            if (e && !operand(ps, &e->r)) {
                where_free(e);
                e = NULL;
            }
        }
    }
    ps->depth--;
    return e;
}

static WhereExpr *parse_and(Parser *ps)
{
    WhereExpr *e = parse_factor(ps);
    while (e && keyword(ps, "and")) {
        WhereExpr *b = parse_factor(ps);
        if (!b) {
            where_free(e);
            return NULL;
        }
        WhereExpr *n = new_expr(W_AND);
        n->a = e;
        n->b = b;
        e = n;
    }
    return e;
}

static WhereExpr *parse_or(Parser *ps)
{
    WhereExpr *e = parse_and(ps);
    while (e && keyword(ps, "or")) {
        WhereExpr *b = parse_and(ps);
        if (!b) {
            where_free(e);
            return NULL;
        }
        WhereExpr *n = new_expr(W_OR);
        n->a = e;
        n->b = b;
        e = n;
    }
    return e;
}

WhereExpr *where_parse(const char *text, char **err)
{
    Parser ps = {text, NULL, 0};
    WhereExpr *e = parse_or(&ps);
    skip_ws(&ps);
    if (e && *ps.p) {
        fail(&ps, "unexpected text");
        where_free(e);
        e = NULL;
    }
    if (!e) {
        if (!ps.err)
            ps.err = xstrdup("malformed expression");
        if (err)
            *err = ps.err;
        else
            free(ps.err);
    }
    return e;
}

void where_free(WhereExpr *e)
{
    if (!e)
        return;
    where_free(e->a);
    where_free(e->b);
    free(e->l.text);
    free(e->r.text);
    free(e);
}

static char *resolve(const Operand *o, WhereGetter get, void *ctx)
{
    if (!o->is_field)
        return xstrdup(o->text);
    /* name__label -> name_label */
    StrBuf sb = STRBUF_INIT;
    for (const char *p = o->text; *p; p++) {
        if (p[0] == '_' && p[1] == '_') {
            strbuf_addch(&sb, '_');
            p++;
        } else {
            strbuf_addch(&sb, *p);
        }
    }
    char *v = get(ctx, sb.buf);
    strbuf_release(&sb);
    return v;
}

bool where_eval(const WhereExpr *e, WhereGetter get, void *ctx)
{
    switch (e->op) {
    case W_TRUE:
        return true;
    case W_FALSE:
        return false;
    case W_AND:
        return where_eval(e->a, get, ctx) && where_eval(e->b, get, ctx);
    case W_OR:
        return where_eval(e->a, get, ctx) || where_eval(e->b, get, ctx);
    case W_NOT:
        return !where_eval(e->a, get, ctx);
    case W_EQ:
    case W_NE: {
        char *l = resolve(&e->l, get, ctx);
        char *r = resolve(&e->r, get, ctx);
        bool eq = l && r && strcmp(l, r) == 0;
        bool known = l && r;
        free(l);
        free(r);
        return e->op == W_EQ ? eq : (known && !eq);
    }
    }
    return false;
}
