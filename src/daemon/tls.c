/*
 * The host's TLS certificate: a self-signed RSA certificate for the host
 * name and management address, made at first start and kept in
 * <state-dir>/xapi-ssl.pem (key and certificate, mode 0600), as XenServer
 * keeps /etc/xensource/xapi-ssl.pem.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

static char *bio_to_string(BIO *b)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    return n > 0 ? xstrndup(data, (size_t)n) : NULL;
}

static bool add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return false;
    bool ok = X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

static bool generate(const char *path, const char *hostname, const char *address, char **err)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    X509 *x = X509_new();
    bool ok = false;
    BIO *out = NULL;
    if (!key || !x)
        goto done;
    X509_set_version(x, 2);
    unsigned char serial[16];
    RAND_bytes(serial, sizeof(serial));
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname, -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    char *san = address && *address ? xasprintf("DNS:%s, IP:%s", hostname, address)
                                    : xasprintf("DNS:%s", hostname);
    add_ext(x, NID_subject_alt_name, san);
    free(san);
    add_ext(x, NID_basic_constraints, "critical,CA:FALSE");
    if (!X509_sign(x, key, EVP_sha256()))
        goto done;

    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        *err = xasprintf("cannot write %s: %s", path, strerror(errno));
        goto done;
    }
    FILE *f = fdopen(fd, "w");
    ok = f && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) && PEM_write_X509(f, x);
    if (f)
        ok = (fclose(f) == 0) && ok;
    if (!ok)
        *err = xasprintf("cannot write %s", path);
done:
    if (!ok && !*err)
        *err = xasprintf("cannot generate the host certificate: %s",
                         ERR_reason_error_string(ERR_get_error()));
    BIO_free(out);
    X509_free(x);
    EVP_PKEY_free(key);
    return ok;
}

bool daemon_tls_load(const char *path, const char *hostname, const char *address, char **key_pem,
                     char **cert_pem, char **err)
{
    *err = NULL;
    if (access(path, R_OK) != 0) {
        log_info("generating a self-signed host certificate in %s", path);
        if (!generate(path, hostname, address, err))
            return false;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        *err = xasprintf("cannot read %s: %s", path, strerror(errno));
        return false;
    }
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    rewind(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    if (!x && key) {
        /* the certificate may follow the key */
        rewind(f);
        EVP_PKEY *tmp = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        EVP_PKEY_free(tmp);
        x = PEM_read_X509(f, NULL, NULL, NULL);
    }
    fclose(f);
    if (!key || !x) {
        *err = xasprintf("%s does not hold a private key and a certificate", path);
        EVP_PKEY_free(key);
        X509_free(x);
        return false;
    }
    BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL);
    PEM_write_bio_X509(cb, x);
    *key_pem = bio_to_string(kb);
    *cert_pem = bio_to_string(cb);
    BIO_free(kb);
    BIO_free(cb);
    EVP_PKEY_free(key);
    X509_free(x);
    return *key_pem && *cert_pem;
}
