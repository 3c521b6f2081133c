/*
 * Shared body of the image-parser fuzz targets: the input becomes an
 * in-memory file, is opened as one format with no access to other files,
 * and every run the image reports is read (within a budget), so that the
 * parser, the tables and the read paths all see hostile bytes.
 */
#ifndef HX_FUZZ_COMMON_H
#define HX_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "formats/image.h"

/* Opens data as fmt (flags added to IMG_OPEN_NO_EXTERNAL unless name is
 * given) and walks it. name: path used to resolve references, or NULL. */
void fuzz_image(const uint8_t *data, size_t size, ImgFormat fmt, const char *name,
                unsigned flags);

#endif
