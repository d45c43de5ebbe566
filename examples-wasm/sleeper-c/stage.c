/*
 * Misbehaving Weir stage in C: sleeper, the C twin of examples-wasm/misbehaving/sleeper.
 *
 * Passes every record through unchanged, but sleeps for 5 seconds (`nanosleep`: wasi-libc's
 * `poll_oneoff` on a clock, which the preview 1 adapter turns into `wasi:io/poll`'s `poll`) on a
 * value that contains `sleep`. The guest waits inside the host, where epoch interruption cannot
 * stop it: the host must end the wait at the call's deadline and report a timeout. No config.
 */
#include <time.h>

#include "weir.h"

bool weir_init(weir_str config, weir_error *err) {
    if (config.len != 0) return weir_fail(err, "bad-config", "this stage takes no config");
    return true;
}

bool weir_process(const weir_record *in, weir_outputs *out, weir_error *err) {
    static const uint8_t marker[] = "sleep";
    if (weir_bytes_contains(in->value, (weir_bytes){marker, sizeof marker - 1})) {
        struct timespec five_seconds = {.tv_sec = 5, .tv_nsec = 0};
        nanosleep(&five_seconds, NULL);
    }
    weir_emit_input(out);
    return true;
}
