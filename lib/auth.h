/*
 * auth.h - the membership proof (internal).
 *
 *   client -> AUTH_HELLO {client_nonce Nc, peer_id}
 *   server <- {server_nonce Ns, server_proof = HMAC(T, "rl1-server" | Nc | Ns)}
 *   client    checks server_proof (a server without the token cannot pass)
 *   client -> AUTH_PROVE {client_proof = HMAC(T, "rl1-client" | Ns | Nc | peer_id)}
 *   server    checks it against the Ns it issued on THIS connection, then
 *             marks the connection authenticated.
 *
 * T never travels. Ns is fresh per hello and bound to one connection, so a
 * recorded PROVE is useless anywhere else; Nc makes the server's proof fresh.
 */
#ifndef RINGLEADER_AUTH_H
#define RINGLEADER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringleader/rpc.h"

#define RLI_NONCE_LEN 32
#define RLI_MAC_LEN 32

/* Fills buf with len cryptographically random bytes. */
int rli_random(void *buf, size_t len);

void rli_auth_server_proof(const rl_token *t, const uint8_t *nc, const uint8_t *ns,
                           uint8_t out[RLI_MAC_LEN]);
void rli_auth_client_proof(const rl_token *t, const uint8_t *ns, const uint8_t *nc,
                           const char *peer_id, uint8_t out[RLI_MAC_LEN]);
/*
 * Ring links of endpoints that hold the token (lib/ring_endpoint.c, lib/ring_form.c):
 *   acceptor -> RING_CHALLENGE {Na}                      (fresh per connection)
 *   dialer   -> RING_HELLO {epoch, rank, id, Nd, HMAC(T, "rl1-ring-hello" | Na | Nd | epoch | rank | id)}
 *   acceptor -> RING_WELCOME {HMAC(T, "rl1-ring-welcome" | Nd | Na | epoch | rank)}
 * epoch and rank as 8-byte little-endian. Either side closes the link on a
 * wrong proof; a recorded hello is useless on another connection (Na).
 */
void rli_ring_hello_proof(const rl_token *t, const uint8_t *na, const uint8_t *nd, uint64_t epoch,
                          uint64_t rank, const char *member_id, uint8_t out[RLI_MAC_LEN]);
void rli_ring_welcome_proof(const rl_token *t, const uint8_t *nd, const uint8_t *na,
                            uint64_t epoch, uint64_t rank, uint8_t out[RLI_MAC_LEN]);
/* Constant-time comparison. */
bool rli_mac_equal(const uint8_t *a, const uint8_t *b, size_t len);

#endif
