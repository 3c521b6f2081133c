/* Temporary: vhd driver to come. */
#include <errno.h>
#include "formats/image_int.h"
#include "util/banned.h"
static int stub_open(ImgReader *r, const ImgOpenOptions *o, ImgChain *c, ImgError *err)
{
    return img_error_set(err, ENOTSUP, "not yet");
}
const ImgDriver img_driver_vhd = {.name = "vhd", .format = IMG_FORMAT_VHD, .open = stub_open};
int vhd_write(const ImgSource *src, const ImgWriteOptions *o, ImgOut *out, ImgError *err)
{
    return img_error_set(err, ENOTSUP, "not yet");
}
