/* libFuzzer target: the qcow2 parser and read paths (see fuzz_common.h). */
#include "fuzz_common.h"
#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_image(data, size, IMG_FORMAT_QCOW2, NULL, 0);
    return 0;
}
