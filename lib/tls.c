/* tls.c - nng TLS configurations from PEM files. Mutual authentication:
 * every side presents a certificate chained to the cluster's CA, and a
 * dialler checks that the certificate names the host it dialled. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "rli.h"
#include "tls.h"

bool rli_url_is_tls(const char *url)
{
    return url != NULL && strncmp(url, "tls+tcp", 7) == 0;
}

int rli_url_host(const char *url, char *host, size_t host_cap, char *port, size_t port_cap)
{
    const char *p = url ? strstr(url, "://") : NULL;
    if (p == NULL) return RL_EINVAL;
    p += 3;
    const char *h = p, *he;
    if (*p == '[') { /* [v6]:port */
        h = p + 1;
        if ((he = strchr(h, ']')) == NULL) return RL_EINVAL;
        p = he + 1;
    } else {
        he = p + strcspn(p, ":/");
        p = he;
    }
    size_t hl = (size_t)(he - h);
    if (hl == 0 || hl >= host_cap) return RL_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (*p == ':')
        p++;
    else
        p += strlen(p); /* no port */
    const char *pe = p + strcspn(p, "/");
    size_t pl = (size_t)(pe - p);
    if (pl >= port_cap) return RL_EINVAL;
    memcpy(port, p, pl);
    port[pl] = '\0';
    return RL_OK;
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

struct rli_tls_client {
    char *cert, *key, *ca;               /* PEM texts */
    char cert_path[1024], ca_path[1024]; /* for messages */
    bool check_hostname;
};

void rli_tls_client_free(rli_tls_client *c)
{
    if (c == NULL) return;
    free(c->cert);
    if (c->key != NULL) memset(c->key, 0, strlen(c->key));
    free(c->key);
    free(c->ca);
    free(c);
}

int rli_tls_client_new(const rl_tls_files *files, rli_tls_client **out)
{
    if (files == NULL || files->cert == NULL || files->key == NULL || files->ca == NULL)
        return rli_err(RL_ECONFIG, "a tls+tcp:// URL needs security.tls cert, key and ca");
    rli_tls_client *c = rli_calloc(1, sizeof(*c));
    int rv;
    if ((rv = read_pem(files->cert, &c->cert)) != 0 || (rv = read_pem(files->key, &c->key)) != 0 ||
        (rv = read_pem(files->ca, &c->ca)) != 0) {
        rli_tls_client_free(c);
        return rv;
    }
    snprintf(c->cert_path, sizeof(c->cert_path), "%s", files->cert);
    snprintf(c->ca_path, sizeof(c->ca_path), "%s", files->ca);
    c->check_hostname = !files->skip_hostname_check;
    *out = c;
    return RL_OK;
}

/* A config from PEM texts; server_name NULL: no host name check. */
static int config_from_pem(const rli_tls_client *c, bool server, const char *server_name,
                           nng_tls_config **out)
{
    nng_tls_config *cfg = NULL;
    int rv = nng_tls_config_alloc(&cfg, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT);
    if (rv != 0) return rli_err(rli_err_from_nng(rv), "TLS config: %s", nng_strerror(rv));
    if ((rv = nng_tls_config_own_cert(cfg, c->cert, c->key, NULL)) != 0)
        rv = rli_err(RL_ECONFIG, "TLS cert %s or its key: %s", c->cert_path, nng_strerror(rv));
    else if ((rv = nng_tls_config_ca_chain(cfg, c->ca, NULL)) != 0)
        rv = rli_err(RL_ECONFIG, "TLS CA %s: %s", c->ca_path, nng_strerror(rv));
    else if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0)
        rv = rli_err(RL_ECONFIG, "TLS auth mode: %s", nng_strerror(rv));
    else if (server_name != NULL && (rv = nng_tls_config_server_name(cfg, server_name)) != 0)
        rv = rli_err(RL_ECONFIG, "TLS server name %s: %s", server_name, nng_strerror(rv));
    if (rv != 0) {
        nng_tls_config_free(cfg);
        return rv;
    }
    *out = cfg;
    return RL_OK;
}

int rli_tls_client_config(const rli_tls_client *c, const char *url, nng_tls_config **out)
{
    char host[256], port[16];
    if (!c->check_hostname) return config_from_pem(c, false, NULL, out);
    if (rli_url_host(url, host, sizeof(host), port, sizeof(port)) != RL_OK)
        return rli_err(RL_ECONFIG, "TLS: no host in %s to check the certificate against", url);
    return config_from_pem(c, false, host, out);
}

int rli_tls_config_new(const rl_tls_files *files, bool server, const char *url,
                       nng_tls_config **out)
{
    rli_tls_client *c = NULL;
    int rv = rli_tls_client_new(files, &c);
    if (rv != 0) return rv;
    rv = server ? config_from_pem(c, true, NULL, out) : rli_tls_client_config(c, url, out);
    rli_tls_client_free(c);
    return rv;
}

/* ---- explaining a refused certificate ------------------------------------ */

/* A TCP connection to host:port within timeout_ms; -1 if none. */
static int probe_connect(const char *host, const char *port, int timeout_ms)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0) return -1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) return -1;
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t el = sizeof(err);
    if (poll(&pfd, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 ||
        err != 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

/* True if name is an item of the list "a, b, c". */
static bool list_has(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p++)
        if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ',')) return true;
    return false;
}

/* Appends the names crt holds ("127.0.0.1, localhost"); sets *ip_only when
 * host is among them as an IP address but not as a DNS name. */
static void cert_names(const mbedtls_x509_crt *crt, const char *host, char *out, size_t cap,
                       bool *ip_only)
{
    bool as_ip = false, as_dns = false;
    size_t len = 0;
    out[0] = '\0';
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s != NULL && s->buf.p != NULL;
         s = s->next) {
        char name[INET6_ADDRSTRLEN + 256] = "";
        int tag = s->buf.tag & 0x1f;
        if (tag == 2 && s->buf.len < 256) { /* dNSName */
            memcpy(name, s->buf.p, s->buf.len);
            name[s->buf.len] = '\0';
            if (strcasecmp(name, host) == 0) as_dns = true;
        } else if (tag == 7 && (s->buf.len == 4 || s->buf.len == 16)) { /* iPAddress */
            inet_ntop(s->buf.len == 4 ? AF_INET : AF_INET6, s->buf.p, name, sizeof(name));
            if (strcmp(name, host) == 0) as_ip = true;
        } else {
            continue;
        }
        if (len < cap && !list_has(out, name)) /* IP:x and DNS:x read as one x */
            len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? ", " : "", name);
    }
    if (out[0] == '\0') { /* no subjectAltName: the subject's CN */
        for (const mbedtls_x509_name *n = &crt->subject; n != NULL; n = n->next)
            if (n->oid.p != NULL && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0 &&
                n->val.len < cap) {
                memcpy(out, n->val.p, n->val.len);
                out[n->val.len] = '\0';
            }
    }
    if (out[0] == '\0') snprintf(out, cap, "no host at all");
    *ip_only = as_ip && !as_dns;
}

typedef struct probe {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_x509_crt ca, own;
    mbedtls_pk_context key;
    mbedtls_net_context net;
} probe;

static int probe_setup(probe *p, const rli_tls_client *c, const char *host, int timeout_ms)
{
    if (mbedtls_ctr_drbg_seed(&p->drbg, mbedtls_entropy_func, &p->entropy, NULL, 0) != 0 ||
        mbedtls_x509_crt_parse(&p->ca, (const unsigned char *)c->ca, strlen(c->ca) + 1) != 0 ||
        mbedtls_x509_crt_parse(&p->own, (const unsigned char *)c->cert, strlen(c->cert) + 1) != 0 ||
        mbedtls_pk_parse_key(&p->key, (const unsigned char *)c->key, strlen(c->key) + 1, NULL, 0) !=
            0 ||
        mbedtls_ssl_config_defaults(&p->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0)
        return -1;
    mbedtls_ssl_conf_authmode(&p->conf, MBEDTLS_SSL_VERIFY_OPTIONAL); /* read it, judge below */
    mbedtls_ssl_conf_ca_chain(&p->conf, &p->ca, NULL);
    mbedtls_ssl_conf_rng(&p->conf, mbedtls_ctr_drbg_random, &p->drbg);
    mbedtls_ssl_conf_read_timeout(&p->conf, (uint32_t)timeout_ms);
    if (mbedtls_ssl_conf_own_cert(&p->conf, &p->own, &p->key) != 0 ||
        mbedtls_ssl_setup(&p->ssl, &p->conf) != 0 || mbedtls_ssl_set_hostname(&p->ssl, host) != 0)
        return -1;
    mbedtls_ssl_set_bio(&p->ssl, &p->net, mbedtls_net_send, NULL, mbedtls_net_recv_timeout);
    return 0;
}

/* The reason peer's certificate is refused, in why; false if it is not
 * (or the peer could not be asked). */
static bool probe_why(probe *p, const rli_tls_client *c, const char *url, const char *host,
                      char *why, size_t cap)
{
    int rv;
    do
        rv = mbedtls_ssl_handshake(&p->ssl);
    while (rv == MBEDTLS_ERR_SSL_WANT_READ || rv == MBEDTLS_ERR_SSL_WANT_WRITE);
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&p->ssl);
    if (peer == NULL) return false;
    uint32_t flags = mbedtls_ssl_get_verify_result(&p->ssl);
    if (!c->check_hostname) flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
    if (flags == 0) return false;
    if (flags == MBEDTLS_X509_BADCERT_CN_MISMATCH) {
        char names[512];
        bool ip_only = false;
        cert_names(peer, host, names, sizeof(names), &ip_only);
        snprintf(why, cap, "TLS: the certificate of %s is not for %s (it names %s)%s%s%s", url,
                 host, names,
                 ip_only ? "; it lists the address as an IP entry only, and this TLS library "
                           "matches DNS entries: add DNS:"
                         : "",
                 ip_only ? host : "", ip_only ? " to its subjectAltName" : "");
        return true;
    }
    char info[512];
    mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags & ~MBEDTLS_X509_BADCERT_CN_MISMATCH);
    for (char *nl; (nl = strchr(info, '\n')) != NULL;)
        *nl = nl[1] ? ';' : '\0';
    snprintf(why, cap, "TLS: the certificate of %s is refused: %s (CA %.300s)", url, info,
             c->ca_path);
    return true;
}

int rli_tls_explain(const rli_tls_client *c, const char *url, int timeout_ms)
{
    char host[256], port[16], why[1024];
    if (c == NULL || rli_url_host(url, host, sizeof(host), port, sizeof(port)) != RL_OK)
        return RL_OK;
    int fd = probe_connect(host, port, timeout_ms);
    if (fd < 0) return RL_OK;
    probe *p = rli_calloc(1, sizeof(*p));
    mbedtls_entropy_init(&p->entropy);
    mbedtls_ctr_drbg_init(&p->drbg);
    mbedtls_ssl_config_init(&p->conf);
    mbedtls_ssl_init(&p->ssl);
    mbedtls_x509_crt_init(&p->ca);
    mbedtls_x509_crt_init(&p->own);
    mbedtls_pk_init(&p->key);
    mbedtls_net_init(&p->net);
    p->net.fd = fd;
    bool refused =
        probe_setup(p, c, host, timeout_ms) == 0 && probe_why(p, c, url, host, why, sizeof(why));
    mbedtls_net_free(&p->net);
    mbedtls_ssl_free(&p->ssl);
    mbedtls_ssl_config_free(&p->conf);
    mbedtls_pk_free(&p->key);
    mbedtls_x509_crt_free(&p->own);
    mbedtls_x509_crt_free(&p->ca);
    mbedtls_ctr_drbg_free(&p->drbg);
    mbedtls_entropy_free(&p->entropy);
    free(p);
    return refused ? rli_err(RL_ECONFIG, "%s", why) : RL_OK;
}

int rli_tls_explain_files(const rl_tls_files *files, const char *url, int timeout_ms)
{
    rli_tls_client *c = NULL;
    if (files == NULL || files->cert == NULL || files->key == NULL || files->ca == NULL ||
        rli_tls_client_new(files, &c) != RL_OK)
        return RL_OK;
    int rv = rli_tls_explain(c, url, timeout_ms);
    rli_tls_client_free(c);
    return rv;
}
