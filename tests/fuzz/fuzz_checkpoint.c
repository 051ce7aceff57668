/* fuzz_checkpoint.c - libFuzzer harness for the checkpoint reader: any bytes
 * must decode (RL_OK) or be refused (RL_EDATA, RL_EVERSION) without
 * crashing, hanging or leaking. Each input is decoded twice: as it is, and
 * with a header made right for its payload (magic, version, length and
 * CRC-32C), so that mutations reach the msgpack decoder rather than stop at
 * the checksum. A decoded checkpoint is encoded again and must decode to
 * the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringleader/checkpoint.h"
#include "rli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_once(const uint8_t *data, size_t size)
{
    rl_checkpoint c;
    int rc = rl_checkpoint_decode(data, size, &c);
    RL_ASSERT(rc == RL_OK || rc == RL_EDATA || rc == RL_EVERSION);
    if (rc == RL_OK) {
        void *again;
        size_t len;
        RL_ASSERT(rl_checkpoint_encode(&c, &again, &len) == RL_OK);
        rl_checkpoint d;
        RL_ASSERT(rl_checkpoint_decode(again, len, &d) == RL_OK);
        void *third;
        size_t len3;
        RL_ASSERT(rl_checkpoint_encode(&d, &third, &len3) == RL_OK);
        RL_ASSERT(len3 == len && memcmp(again, third, len) == 0);
        free(again);
        free(third);
        rl_checkpoint_fini(&d);
    }
    rl_checkpoint_fini(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_once(data, size);
    if (size < RL_CHECKPOINT_HEADER) return 0;
    uint8_t *fixed = malloc(size);
    RL_ASSERT(fixed != NULL);
    memcpy(fixed, data, size);
    size_t payload = size - RL_CHECKPOINT_HEADER;
    uint32_t crc = rl_crc32c(fixed + RL_CHECKPOINT_HEADER, payload);
    memcpy(fixed, "RLCKPT\r\n", 8);
    for (int i = 0; i < 4; i++) {
        fixed[8 + i] = (uint8_t)((unsigned)RL_CHECKPOINT_VERSION >> (8 * i));
        fixed[12 + i] = (uint8_t)(crc >> (8 * i));
    }
    for (int i = 0; i < 8; i++)
        fixed[16 + i] = (uint8_t)((uint64_t)payload >> (8 * i));
    decode_once(fixed, size);
    free(fixed);
    return 0;
}
