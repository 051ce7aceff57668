/* fuzz_spec.c - libFuzzer harness for the spec loader: any bytes must load
 * (RL_OK) or be refused (RL_ECONFIG) without crashing, hanging or leaking.
 * Problems are printed to /dev/null so that the diagnostics code (source
 * line, caret, windowing) runs too. The name puts the spec in configs/, so
 * that the seeds' demo.token, data/ and tls/ resolve and valid inputs get
 * past the file checks to the rules and describe. */
#include <stdint.h>
#include <stdio.h>

#include "ringleader/spec.h"
#include "rli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (devnull == NULL) devnull = fopen("/dev/null", "w");
    rl_spec *spec = NULL;
    int rc = rl_spec_load_text(RL_SOURCE_DIR "/configs/fuzz.yaml", (const char *)data, size, &spec,
                               devnull);
    RL_ASSERT(rc == RL_OK || rc == RL_ECONFIG);
    RL_ASSERT((rc == RL_OK) == (spec != NULL));
    if (spec != NULL) rl_spec_describe(spec, devnull);
    rl_spec_free(spec);
    return 0;
}
