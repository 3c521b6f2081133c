/*
 * UUIDs as XenAPI uses them: random (version 4), printed lower-case as
 * 8-4-4-4-12 hex digits.
 */
#ifndef HX_UTIL_UUID_H
#define HX_UTIL_UUID_H

#include <stdbool.h>

#define UUID_STR_LEN 37 /* including the NUL */

void uuid_generate_str(char out[UUID_STR_LEN]);
/* True if s is exactly a UUID in 8-4-4-4-12 hex form (either case). */
bool uuid_is_valid(const char *s);
/* Fills buf with n random bytes from the kernel; aborts if that fails. */
void random_bytes(void *buf, size_t n);

#endif
