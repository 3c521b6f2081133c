/*
 * Command-line parameters of xe: key=value pairs (split at the first '='),
 * --flags (value "true"), booleans and sizes spelled as XenServer accepts
 * them.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "util/banned.h"

const char *cli_param(Cli *cli, const char *key)
{
    for (size_t i = cli->nparams; i-- > 0;)
        if (strcmp(cli->params[i].key, key) == 0)
            return cli->params[i].value;
    return NULL;
}

bool cli_has(Cli *cli, const char *key)
{
    return cli_param(cli, key) != NULL;
}

bool cli_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "t", "yes", "y", "1", "on"};
    static const char *const no[] = {"false", "f", "no", "n", "0", "off"};
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++)
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
    for (size_t i = 0; i < ARRAY_SIZE(no); i++)
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    return false;
}

bool cli_parse_size(const char *s, int64_t *out)
{
    static const struct {
        const char *suffix;
        int shift;
    } units[] = {
        {"", 0},    {"b", 0},   {"bytes", 0}, {"k", 10},  {"kb", 10}, {"kib", 10},
        {"m", 20},  {"mb", 20}, {"mib", 20},  {"g", 30},  {"gb", 30}, {"gib", 30},
        {"t", 40},  {"tb", 40}, {"tib", 40},
    };
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || v < 0)
        return false;
    while (isspace((unsigned char)*end))
        end++;
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        if (strcasecmp(end, units[i].suffix) != 0)
            continue;
        if (units[i].shift && v > (INT64_MAX >> units[i].shift))
            return false;
        *out = (int64_t)v << units[i].shift;
        return true;
    }
    return false;
}

bool cli_is_std_param(const char *key)
{
    static const char *const std[] = {"server",   "password", "port",  "username",
                                      "minimal",  "force",    "multiple", "all",
                                      "message-priority", "trace", "passwordfile", "nossl",
                                      "debug",    "debugonfail"};
    for (size_t i = 0; i < ARRAY_SIZE(std); i++)
        if (strcmp(key, std[i]) == 0)
            return true;
    return false;
}
