/* auth.c - cluster tokens and the HMAC-SHA256 challenge-response (see auth.h). */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <mbedtls/md.h>

#include "auth.h"
#include "ringleader/log.h"
#include "rli.h"

/* A token others can read is a shared secret no more: a warning, not an
 * error (see docs/operations.md, "Certificates and tokens for your own hosts"). */
static void token_check_mode(FILE *f, const char *file)
{
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)) != 0)
        rl_log_warn("token file %s is readable by %s (mode %04o); chmod 600 %s", file,
                    (st.st_mode & S_IROTH) ? "every user" : "its group",
                    (unsigned)(st.st_mode & 07777), file);
}

int rl_token_load(const char *file, rl_token *out)
{
    char buf[RL_TOKEN_MAX + 64];
    size_t n = 0;
    const char *src;
    memset(out, 0, sizeof(*out));
    if (file != NULL && file[0] != '\0') {
        FILE *f = fopen(file, "rb");
        if (f == NULL)
            return rli_err(rli_err_from_errno(errno), "token file %s: %s", file,
                           strerror(errno));
        token_check_mode(f, file);
        n = fread(buf, 1, sizeof(buf) - 1, f);
        int big = !feof(f) && fgetc(f) != EOF;
        fclose(f);
        if (big) return rli_err(RL_ECONFIG, "token file %s: longer than %d bytes", file,
                                RL_TOKEN_MAX);
        src = file;
    } else {
        const char *env = getenv("RINGLEADER_TOKEN");
        if (env == NULL || env[0] == '\0')
            return rli_err(RL_ECONFIG, "no cluster token: set security.token_file in the spec "
                           "or the RINGLEADER_TOKEN variable");
        n = strlen(env);
        if (n > sizeof(buf) - 1) n = sizeof(buf) - 1;
        memcpy(buf, env, n);
        src = "$RINGLEADER_TOKEN";
    }
    buf[n] = '\0';
    size_t a = 0, b = n;
    while (a < b && isspace((unsigned char)buf[a])) a++;
    while (b > a && isspace((unsigned char)buf[b - 1])) b--;
    if (b - a < 16 || b - a > RL_TOKEN_MAX)
        return rli_err(RL_ECONFIG, "token from %s must be 16 to %d bytes (got %zu)", src,
                       RL_TOKEN_MAX, b - a);
    memcpy(out->bytes, buf + a, b - a);
    out->len = b - a;
    memset(buf, 0, sizeof(buf));
    return RL_OK;
}

int rli_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return rli_err(RL_EIO, "getrandom: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
    }
    return RL_OK;
}

static void hmac(const rl_token *t, const uint8_t *parts[], const size_t lens[], int nparts,
                 uint8_t out[RLI_MAC_LEN])
{
    mbedtls_md_context_t ctx;
    mbedtls_md_init(&ctx);
    RL_ASSERT(mbedtls_md_setup(&ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1) == 0);
    RL_ASSERT(mbedtls_md_hmac_starts(&ctx, t->bytes, t->len) == 0);
    for (int i = 0; i < nparts; i++) RL_ASSERT(mbedtls_md_hmac_update(&ctx, parts[i], lens[i]) == 0);
    RL_ASSERT(mbedtls_md_hmac_finish(&ctx, out) == 0);
    mbedtls_md_free(&ctx);
}

void rli_auth_server_proof(const rl_token *t, const uint8_t *nc, const uint8_t *ns,
                           uint8_t out[RLI_MAC_LEN])
{
    static const char label[] = "rl1-server";
    const uint8_t *parts[] = {(const uint8_t *)label, nc, ns};
    size_t lens[] = {sizeof(label) - 1, RLI_NONCE_LEN, RLI_NONCE_LEN};
    hmac(t, parts, lens, 3, out);
}

void rli_auth_client_proof(const rl_token *t, const uint8_t *ns, const uint8_t *nc,
                           const char *peer_id, uint8_t out[RLI_MAC_LEN])
{
    static const char label[] = "rl1-client";
    const char *id = peer_id ? peer_id : "";
    const uint8_t *parts[] = {(const uint8_t *)label, ns, nc, (const uint8_t *)id};
    size_t lens[] = {sizeof(label) - 1, RLI_NONCE_LEN, RLI_NONCE_LEN, strlen(id)};
    hmac(t, parts, lens, 4, out);
}

static void le64(uint64_t v, uint8_t out[8])
{
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (8 * i));
}

void rli_ring_hello_proof(const rl_token *t, const uint8_t *na, const uint8_t *nd, uint64_t epoch,
                          uint64_t rank, const char *member_id, uint8_t out[RLI_MAC_LEN])
{
    static const char label[] = "rl1-ring-hello";
    const char *id = member_id ? member_id : "";
    uint8_t e[8], r[8];
    le64(epoch, e);
    le64(rank, r);
    const uint8_t *parts[] = {(const uint8_t *)label, na, nd, e, r, (const uint8_t *)id};
    size_t lens[] = {sizeof(label) - 1, RLI_NONCE_LEN, RLI_NONCE_LEN, 8, 8, strlen(id)};
    hmac(t, parts, lens, 6, out);
}

void rli_ring_welcome_proof(const rl_token *t, const uint8_t *nd, const uint8_t *na,
                            uint64_t epoch, uint64_t rank, uint8_t out[RLI_MAC_LEN])
{
    static const char label[] = "rl1-ring-welcome";
    uint8_t e[8], r[8];
    le64(epoch, e);
    le64(rank, r);
    const uint8_t *parts[] = {(const uint8_t *)label, nd, na, e, r};
    size_t lens[] = {sizeof(label) - 1, RLI_NONCE_LEN, RLI_NONCE_LEN, 8, 8};
    hmac(t, parts, lens, 5, out);
}

bool rli_mac_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    uint8_t d = 0;
    for (size_t i = 0; i < len; i++) d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}
