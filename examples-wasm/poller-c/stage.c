/*
 * Misbehaving Weir stage in C: poller, the C twin of examples-wasm/misbehaving/poller.
 *
 * Passes every record through unchanged, but on a value that contains `poll` it calls WASI's
 * `poll_oneoff` forever on two clock subscriptions: one 5 seconds away (relative) and one at an
 * instant 10 seconds away (absolute). The preview 1 adapter turns them into `wasi:io/poll`'s
 * `poll` on a `subscribe-duration` and a `subscribe-instant` pollable. The guest waits inside the
 * host, where epoch interruption cannot stop it: the host must end the wait at the call's
 * deadline and report a timeout. No config.
 */
#include <wasi/api.h>

#include "weir.h"

bool weir_init(weir_str config, weir_error *err) {
    if (config.len != 0) return weir_fail(err, "bad-config", "this stage takes no config");
    return true;
}

static __wasi_subscription_t clock_subscription(__wasi_timestamp_t when, bool absolute) {
    __wasi_subscription_t s = {0};
    s.u.tag = __WASI_EVENTTYPE_CLOCK;
    s.u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
    s.u.u.clock.timeout = when;
    s.u.u.clock.flags = absolute ? __WASI_SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME : 0;
    return s;
}

static void poll_forever(void) {
    __wasi_timestamp_t now = 0;
    if (__wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 1, &now) != 0) weir_panic("no monotonic clock");
    __wasi_subscription_t subscriptions[2] = {
        clock_subscription(5000000000ull, false),
        clock_subscription(now + 10000000000ull, true),
    };
    __wasi_event_t events[2];
    __wasi_size_t ready;
    for (;;) {
        /* Once the first is due every poll returns at once; the loop goes on regardless. */
        if (__wasi_poll_oneoff(subscriptions, events, 2, &ready) != 0) weir_panic("poll_oneoff failed");
    }
}

bool weir_process(const weir_record *in, weir_outputs *out, weir_error *err) {
    static const uint8_t marker[] = "poll";
    if (weir_bytes_contains(in->value, (weir_bytes){marker, sizeof marker - 1})) poll_forever();
    weir_emit_input(out);
    return true;
}
