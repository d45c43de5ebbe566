/*
 * Example Weir stage in C: trap, the C twin of examples-wasm/misbehaving/trap.
 *
 * Passes every record through unchanged, and traps (`weir_panic`) on a value that contains the
 * marker `trap_on`: the host must dead-letter that record alone and carry on with a fresh
 * instance. Config: `{ trap_on = "poison" }` (the default); an empty marker is refused.
 */
#include <string.h>

#include "weir.h"
#include "weir_json.h"

static weir_buf marker;

bool weir_init(weir_str config, weir_error *err) {
    weir_buf_clear(&marker);
    weir_buf_push_str(&marker, "poison");
    weir_bytes text = {(const uint8_t *)config.data, config.len};
    weir_json root, name, value;
    if (config.len == 0) return true;
    const char *e = weir_json_parse(text, &root);
    if (e) return weir_fail(err, "bad-config", "invalid stage config: %s", e);
    if (root.kind == WEIR_JSON_NULL) return true;
    if (root.kind != WEIR_JSON_OBJECT) return weir_fail(err, "bad-config", "invalid stage config: not an object");
    size_t pos = 0;
    while (weir_json_next_member(root, &pos, &name, &value)) {
        if (!weir_json_string_eq(name, "trap_on", 7) || value.kind != WEIR_JSON_STRING)
            return weir_fail(err, "bad-config", "invalid stage config: expected `trap_on`, a string");
        weir_buf_clear(&marker);
        weir_json_string(value, &marker);
    }
    if (marker.len == 0) return weir_fail(err, "bad-config", "`trap_on` must not be empty");
    return true;
}

bool weir_process(const weir_record *in, weir_outputs *out, weir_error *err) {
    if (weir_bytes_contains(in->value, weir_buf_bytes(&marker))) weir_panic("the record is poisoned");
    weir_emit_input(out);
    return true;
}
