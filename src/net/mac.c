/*
 * MAC addresses for VIFs: random locally administered ones, the XenServer
 * derivation from a VM's mac_seed, and parsing of user-given ones. Pure
 * functions apart from the random source; uniqueness among VIFs is checked by
 * the caller, not here.
 */
#include <stdlib.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <openssl/evp.h>

#include "net/net.h"
#include "util/macros.h"
#include "util/banned.h"

static void net_mac_make_local_unicast(NetMac *mac)
{
    mac->b[0] = (uint8_t)((mac->b[0] | 0x02) & ~0x01);
}

void net_mac_random(NetMac *mac)
{
    size_t got = 0;
    while (got < sizeof(mac->b)) {
        ssize_t n = getrandom(mac->b + got, sizeof(mac->b) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* getrandom() cannot fail on Linux >= 3.17 with these flags */
            abort();
        }
        got += (size_t)n;
    }
    net_mac_make_local_unicast(mac);
}

static void net_mac_md5(const void *data, size_t len, uint8_t out[16])
{
    unsigned int outlen = 0;
    if (!EVP_Digest(data, len, out, &outlen, EVP_md5(), NULL) || outlen != 16)
        abort(); /* MD5 is always available in libcrypto's default provider */
}

int net_mac_from_seed(const char *seed, unsigned device, NetMac *mac)
{
    if (device > NET_MAC_SEED_DEVICE_MAX)
        return -ERANGE;
    uint8_t h1[16], h2[16];
    net_mac_md5(seed, strlen(seed), h1);
    for (unsigned i = 0; i < 2 * device; i++) {
        memcpy(h2, h1, sizeof(h2));
        net_mac_md5(h2, sizeof(h2), h1);
    }
    net_mac_md5(h1, sizeof(h1), h2);
    mac->b[0] = h1[0];
    mac->b[1] = h1[1];
    mac->b[2] = h1[2];
    mac->b[3] = h1[3];
    mac->b[4] = h2[1];
    mac->b[5] = h2[2];
    net_mac_make_local_unicast(mac);
    return 0;
}

static int net_mac_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int net_mac_parse(const char *s, NetMac *mac, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (!s || strlen(s) != 17) {
        *why = "a MAC address must be six pairs of hex digits separated by ':'";
        return -EINVAL;
    }
    char sep = s[2];
    if (sep != ':' && sep != '-') {
        *why = "a MAC address must be six pairs of hex digits separated by ':'";
        return -EINVAL;
    }
    NetMac m;
    for (int i = 0; i < 6; i++) {
        const char *p = s + 3 * i;
        int hi = net_mac_hex(p[0]), lo = net_mac_hex(p[1]);
        if (hi < 0 || lo < 0 || (i < 5 && p[2] != sep)) {
            *why = "a MAC address must be six pairs of hex digits separated by ':'";
            return -EINVAL;
        }
        m.b[i] = (uint8_t)(hi << 4 | lo);
    }
    if (m.b[0] & 0x01) {
        *why = "a multicast MAC address (lowest bit of the first octet set) cannot be used by a "
               "NIC";
        return -EINVAL;
    }
    static const NetMac zero;
    if (net_mac_equal(&m, &zero)) {
        *why = "the all-zero MAC address cannot be used by a NIC";
        return -EINVAL;
    }
    *mac = m;
    return 0;
}

void net_mac_format(const NetMac *mac, char out[NET_MAC_STRLEN])
{
    snprintf(out, NET_MAC_STRLEN, "%02x:%02x:%02x:%02x:%02x:%02x", mac->b[0], mac->b[1], mac->b[2],
             mac->b[3], mac->b[4], mac->b[5]);
}

int net_mac_normalize(const char *s, char out[NET_MAC_STRLEN], const char **why)
{
    NetMac m;
    int r = net_mac_parse(s, &m, why);
    if (r < 0)
        return r;
    net_mac_format(&m, out);
    return 0;
}

bool net_mac_equal(const NetMac *a, const NetMac *b)
{
    return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}
