/*
 * ring_socket.c - what nng 1.5.2 does not tell about a stream: the socket
 * under a TCP link (for socket options and the collective's own reads and
 * writes), whether it is TLS, and whether a dial connected to itself.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ring_internal.h"

/* Does the socket address sa equal nng's na (IPv4 or IPv6)? */
static bool same_addr(const struct sockaddr_storage *sa, const nng_sockaddr *na)
{
    if (sa->ss_family == AF_INET && na->s_family == NNG_AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        return a->sin_port == na->s_in.sa_port && a->sin_addr.s_addr == na->s_in.sa_addr;
    }
    if (sa->ss_family == AF_INET6 && na->s_family == NNG_AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        return a->sin6_port == na->s_in6.sa_port &&
               memcmp(a->sin6_addr.s6_addr, na->s_in6.sa_addr, 16) == 0;
    }
    return false;
}

/* The local and peer addresses of a TCP stream (plain or TLS); false for
 * any other stream. */
static bool stream_addrs(nng_stream *s, nng_sockaddr *loc, nng_sockaddr *rem)
{
    return nng_stream_get_addr(s, NNG_OPT_LOCADDR, loc) == 0 &&
           nng_stream_get_addr(s, NNG_OPT_REMADDR, rem) == 0 &&
           (loc->s_family == NNG_AF_INET || loc->s_family == NNG_AF_INET6);
}

bool rli_stream_is_tls(nng_stream *s)
{
    bool verified;
    return nng_stream_get_bool(s, NNG_OPT_TLS_VERIFIED, &verified) == 0;
}

/*
 * nng 1.5.2 does not expose the socket, so this looks for the one socket of
 * this process whose local and peer addresses are the stream's: a TCP
 * connection's address pair is unique on a host.
 */
int rli_stream_fd(nng_stream *s)
{
    nng_sockaddr loc, rem;
    if (!stream_addrs(s, &loc, &rem)) return -1;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) return -1;
    int found = -1;
    struct dirent *e;
    while (found < 0 && (e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end != '\0' || fd < 0 || fd == dirfd(d)) continue;
        struct sockaddr_storage a, b;
        socklen_t al = sizeof(a), bl = sizeof(b);
        if (getsockname((int)fd, (struct sockaddr *)&a, &al) == 0 && same_addr(&a, &loc) &&
            getpeername((int)fd, (struct sockaddr *)&b, &bl) == 0 && same_addr(&b, &rem))
            found = (int)fd;
    }
    closedir(d);
    return found;
}

bool rli_stream_is_self(nng_stream *s)
{
    nng_sockaddr loc, rem;
    if (!stream_addrs(s, &loc, &rem)) return false;
    if (loc.s_family == NNG_AF_INET)
        return loc.s_in.sa_port == rem.s_in.sa_port && loc.s_in.sa_addr == rem.s_in.sa_addr;
    return loc.s_in6.sa_port == rem.s_in6.sa_port &&
           memcmp(loc.s_in6.sa_addr, rem.s_in6.sa_addr, 16) == 0;
}
