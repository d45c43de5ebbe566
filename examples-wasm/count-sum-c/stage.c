/*
 * Example Weir aggregate stage in C: count-sum, the same stage as examples-wasm/count-sum (Rust).
 *
 * Per key and window, counts the records and sums the JSON number at `field` of their values (a
 * JSON object each), and emits one record `{"count":…,"sum":…}` keyed by the group's key when the
 * window closes. Errors (which fail the record's group in that `add` call): `missing-value`,
 * `bad-json`, `missing-field`, `not-a-number`.
 *
 * Config: `{ field = "amount" }` (default `amount`); `trap_on = "…"` makes `add` trap on a record
 * whose value contains that text (off by default).
 *
 * The accumulator is 16 bytes: the count (u64) and the sum (f64), little-endian; state version 1.
 */
#include <string.h>

#include "weir.h"
#include "weir_json.h"

static weir_buf field, marker;

typedef struct count_sum {
    uint64_t count;
    double sum;
} count_sum;

uint32_t weir_agg_state_version(void) { return 1; }

bool weir_agg_init(weir_str config, weir_error *err) {
    weir_buf_clear(&field);
    weir_buf_push_str(&field, "amount");
    weir_buf_clear(&marker);
    weir_bytes text = {(const uint8_t *)config.data, config.len};
    weir_json root, name, value;
    if (config.len == 0) return true;
    const char *e = weir_json_parse(text, &root);
    if (e) return weir_fail(err, "bad-config", "invalid stage config: %s", e);
    if (root.kind == WEIR_JSON_NULL) return true;
    if (root.kind != WEIR_JSON_OBJECT) return weir_fail(err, "bad-config", "invalid stage config: not an object");
    size_t pos = 0;
    while (weir_json_next_member(root, &pos, &name, &value)) {
        weir_buf *target = weir_json_string_eq(name, "field", 5)     ? &field
                           : weir_json_string_eq(name, "trap_on", 7) ? &marker
                                                                     : NULL;
        if (!target || value.kind != WEIR_JSON_STRING)
            return weir_fail(err, "bad-config", "invalid stage config: expected `field` or `trap_on`, strings");
        weir_buf_clear(target);
        weir_json_string(value, target);
        if (target->len == 0) return weir_fail(err, "bad-config", "`%.*s` must not be empty", (int)name.len - 2, (const char *)name.text + 1);
    }
    return true;
}

static bool decode(weir_bytes acc, count_sum *out, weir_error *err) {
    if (acc.len != sizeof *out) return weir_fail(err, "bad-state", "an accumulator of %zu bytes, not 16", acc.len);
    memcpy(&out->count, acc.data, 8);
    memcpy(&out->sum, acc.data + 8, 8);
    return true;
}

static void encode(const count_sum *cs, weir_buf *out) {
    weir_buf_clear(out);
    weir_buf_push(out, &cs->count, 8);
    weir_buf_push(out, &cs->sum, 8);
}

void weir_agg_create(weir_buf *acc) {
    count_sum empty = {0, 0.0};
    encode(&empty, acc);
}

bool weir_agg_add(weir_buf *acc, const weir_record *rec, weir_error *err) {
    if (marker.len && weir_bytes_contains(rec->value, weir_buf_bytes(&marker))) weir_panic("the record is poisoned");
    count_sum cs;
    if (!decode(weir_buf_bytes(acc), &cs, err)) return false;
    if (!rec->value.data) return weir_fail(err, "missing-value", "the record has no value");
    weir_json root, n;
    const char *e = weir_json_parse(rec->value, &root);
    if (e) return weir_fail(err, "bad-json", "the value is not JSON: %s", e);
    if (root.kind != WEIR_JSON_OBJECT) return weir_fail(err, "bad-json", "the value is not a JSON object");
    if (!weir_json_get(root, (const char *)field.data, field.len, &n))
        return weir_fail(err, "missing-field", "no `%.*s` in the record", (int)field.len, (const char *)field.data);
    if (n.kind != WEIR_JSON_NUMBER)
        return weir_fail(err, "not-a-number", "`%.*s` is not a number: %.*s", (int)field.len, (const char *)field.data, (int)n.len, (const char *)n.text);
    cs.count += 1;
    cs.sum += weir_json_f64(n);
    encode(&cs, acc);
    return true;
}

bool weir_agg_merge(weir_bytes a, weir_bytes b, weir_buf *out, weir_error *err) {
    count_sum x, y;
    if (!decode(a, &x, err) || !decode(b, &y, err)) return false;
    x.count += y.count;
    x.sum += y.sum;
    encode(&x, out);
    return true;
}

bool weir_agg_emit(weir_bytes key, weir_window window, weir_bytes acc, weir_outputs *out, weir_error *err) {
    count_sum cs;
    if (!decode(acc, &cs, err)) return false;
    weir_buf value = {0};
    weir_buf_push_str(&value, "{\"count\":");
    weir_json_write_i64(&value, (int64_t)cs.count);
    weir_buf_push_str(&value, ",\"sum\":");
    weir_json_write_f64(&value, cs.sum);
    weir_buf_push_byte(&value, '}');
    weir_record rec = {0};
    rec.timestamp = WEIR_NO_TIMESTAMP;
    rec.key = key;
    rec.value = weir_buf_bytes(&value);
    weir_emit(out, &rec);
    weir_buf_free(&value);
    return true;
}
