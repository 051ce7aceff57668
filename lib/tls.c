/* tls.c - nng TLS configurations from PEM files. Mutual authentication:
 * every side presents a certificate chained to the cluster's CA. */
#include <errno.h>
#include <string.h>

#include "rli.h"
#include "tls.h"

bool rli_url_is_tls(const char *url)
{
    return url != NULL && strncmp(url, "tls+tcp", 7) == 0;
}

static int read_pem(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return rli_err(rli_err_from_errno(errno), "cannot open %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (1u << 20)) {
                fclose(f);
                free(buf);
                return rli_err(RL_ETOOBIG, "%s: PEM file larger than 1 MiB", path);
            }
            buf = rli_realloc(buf, cap);
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n < 4096) break;
    }
    fclose(f);
    buf[len] = '\0';
    *out = buf;
    return RL_OK;
}

int rli_tls_config_new(const rl_tls_files *files, bool server, nng_tls_config **out)
{
    nng_tls_config *cfg = NULL;
    char *cert = NULL, *key = NULL, *ca = NULL;
    int rv;

    if (files == NULL || files->cert == NULL || files->key == NULL || files->ca == NULL)
        return rli_err(RL_ECONFIG, "a tls+tcp:// URL needs security.tls cert, key and ca");
    if ((rv = read_pem(files->cert, &cert)) != 0 || (rv = read_pem(files->key, &key)) != 0 ||
        (rv = read_pem(files->ca, &ca)) != 0)
        goto out;
    if ((rv = nng_tls_config_alloc(&cfg, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT)) !=
        0) {
        rv = rli_err(rli_err_from_nng(rv), "TLS config: %s", nng_strerror(rv));
        goto out;
    }
    if ((rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0) {
        rv = rli_err(RL_ECONFIG, "TLS cert %s / key %s: %s", files->cert, files->key,
                     nng_strerror(rv));
        goto out;
    }
    if ((rv = nng_tls_config_ca_chain(cfg, ca, NULL)) != 0) {
        rv = rli_err(RL_ECONFIG, "TLS CA %s: %s", files->ca, nng_strerror(rv));
        goto out;
    }
    if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0) {
        rv = rli_err(RL_ECONFIG, "TLS auth mode: %s", nng_strerror(rv));
        goto out;
    }
    *out = cfg;
    cfg = NULL;
    rv = RL_OK;
out:
    if (cfg != NULL) nng_tls_config_free(cfg);
    free(cert);
    free(key);
    free(ca);
    return rv;
}
