/*
 * {{name}}: upper-cases (ASCII) each record's value and appends the configured `suffix`.
 *
 * Config: `{ suffix = "!" }` (the default). Errors: `empty-value` (a null or empty value).
 */
#include <ctype.h>

#include "weir.h"
#include "weir_json.h"

static weir_buf suffix;
static weir_buf value;

/* Called once per instance with the `config` table of the stage's entry in pipeline.toml. */
bool weir_init(weir_str config, weir_error *err) {
    weir_buf_clear(&suffix);
    weir_buf_push_str(&suffix, "!");
    if (config.len == 0) return true;
    weir_json root, name, member;
    const char *e = weir_json_parse((weir_bytes){(const uint8_t *)config.data, config.len}, &root);
    if (e) return weir_fail(err, "bad-config", "invalid stage config: %s", e);
    if (root.kind == WEIR_JSON_NULL) return true;
    if (root.kind != WEIR_JSON_OBJECT) return weir_fail(err, "bad-config", "invalid stage config: not an object");
    size_t pos = 0;
    while (weir_json_next_member(root, &pos, &name, &member)) {
        if (!weir_json_string_eq(name, "suffix", 6) || member.kind != WEIR_JSON_STRING)
            return weir_fail(err, "bad-config", "invalid stage config: expected `suffix`, a string");
        weir_buf_clear(&suffix);
        weir_json_string(member, &suffix);
    }
    return true;
}

/* Called for every input record, in order. */
bool weir_process(const weir_record *in, weir_outputs *out, weir_error *err) {
    if (in->value.data == NULL || in->value.len == 0)
        return weir_fail(err, "empty-value", "there is nothing to shout");
    weir_buf_clear(&value);
    for (size_t i = 0; i < in->value.len; i++) weir_buf_push_byte(&value, (uint8_t)toupper(in->value.data[i]));
    weir_buf_push(&value, suffix.data, suffix.len);
    weir_emit_value(out, weir_buf_bytes(&value));
    return true;
}
