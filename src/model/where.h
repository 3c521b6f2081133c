/*
 * XenAPI's query language for get_all_records_where / get_all_where:
 *   field "power_state" = "Running" and not (field "name__label" = "x")
 * with and, or, not, parentheses, true, false, = and <>. Field names use
 * "__" where the datamodel has a dot (name__label is name_label). Comparison
 * is on the plain string form of the field (xs_value_to_plain_string).
 */
#ifndef HX_MODEL_WHERE_H
#define HX_MODEL_WHERE_H

#include <stdbool.h>

typedef struct WhereExpr WhereExpr;

/* Returns NULL and a malloc'd *err on a syntax error. */
WhereExpr *where_parse(const char *text, char **err);
void where_free(WhereExpr *e);

/* Returns the plain string of a field (malloc'd), or NULL if no such field. */
typedef char *(*WhereGetter)(void *ctx, const char *field);
bool where_eval(const WhereExpr *e, WhereGetter get, void *ctx);

#endif
