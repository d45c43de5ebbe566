/* weir_aggregate.c: the aggregator world's exports and the host imports, on top of the bindings
 * that wit-bindgen generates from sdk/wit at build time (aggregator.h, aggregator.c). */
#include <stdlib.h>
#include <string.h>

#include "aggregator.h"
#include "weir_internal.h"

static bool initialised;
static weir_batch batch;

uint32_t exports_weir_stage_aggregate_batch_format(void) { return WEIR_BATCH_FORMAT; }

uint32_t exports_weir_stage_aggregate_state_version(void) { return weir_agg_state_version(); }

static void to_stage_error(const weir_error *err, exports_weir_stage_aggregate_stage_error_t *out) {
    aggregator_string_dup_n(&out->code, err->code, strnlen(err->code, sizeof err->code));
    aggregator_string_dup_n(&out->message, err->message,
                            strnlen(err->message, sizeof err->message));
}

static void need_init(void) {
    if (!initialised) weir_panic("called before init");
}

/* Hands `b`'s bytes to the host (which frees them after the call); `b` is left empty. */
static void give(weir_buf *b, aggregator_list_u8_t *out) {
    if (!b->data) weir_buf_reserve(b, 1);
    out->ptr = b->data;
    out->len = b->len;
    b->data = NULL, b->len = b->cap = 0;
}

static weir_bytes view(const aggregator_list_u8_t *l) {
    weir_bytes out = {l->ptr ? l->ptr : (const uint8_t *)"", l->len};
    return out;
}

bool exports_weir_stage_aggregate_init(aggregator_string_t *config,
                                       exports_weir_stage_aggregate_stage_error_t *ret) {
    weir_error err = {{0}, {0}};
    weir_str text = {(const char *)config->ptr, config->len};
    bool ok = weir_agg_init(text, &err);
    aggregator_string_free(config);
    if (!ok) {
        to_stage_error(&err, ret);
        return false;
    }
    initialised = true;
    return true;
}

void exports_weir_stage_aggregate_create(aggregator_list_u8_t *ret) {
    need_init();
    weir_buf acc = {0};
    weir_agg_create(&acc);
    give(&acc, ret);
}

void exports_weir_stage_aggregate_add(exports_weir_stage_aggregate_list_group_t *groups,
                                      exports_weir_stage_aggregate_list_result_list_u8_stage_error_t *ret) {
    need_init();
    ret->len = groups->len;
    ret->ptr = calloc(groups->len ? groups->len : 1, sizeof *ret->ptr);
    if (!ret->ptr) weir_panic("out of memory");
    for (size_t g = 0; g < groups->len; g++) {
        exports_weir_stage_aggregate_group_t *group = &groups->ptr[g];
        weir_buf acc = {0};
        weir_buf_push(&acc, group->acc.ptr, group->acc.len);
        if (!weir_decode_batch(group->records.ptr, group->records.len, &batch))
            weir_panic("the host sent a batch of another format");
        weir_error err = {{0}, {0}};
        bool ok = true;
        for (uint32_t i = 0; ok && i < batch.count; i++) ok = weir_agg_add(&acc, &batch.records[i], &err);
        if (ok) {
            ret->ptr[g].is_err = false;
            give(&acc, &ret->ptr[g].val.ok);
        } else {
            weir_buf_free(&acc);
            ret->ptr[g].is_err = true;
            to_stage_error(&err, &ret->ptr[g].val.err);
        }
    }
    exports_weir_stage_aggregate_list_group_free(groups);
}

bool exports_weir_stage_aggregate_merge(aggregator_list_u8_t *a, aggregator_list_u8_t *b,
                                        aggregator_list_u8_t *ret,
                                        exports_weir_stage_aggregate_stage_error_t *ret_err) {
    need_init();
    weir_buf out = {0};
    weir_error err = {{0}, {0}};
    bool ok = weir_agg_merge(view(a), view(b), &out, &err);
    aggregator_list_u8_free(a);
    aggregator_list_u8_free(b);
    if (!ok) {
        weir_buf_free(&out);
        to_stage_error(&err, ret_err);
        return false;
    }
    give(&out, ret);
    return true;
}

void exports_weir_stage_aggregate_emit(aggregator_list_u8_t *key,
                                       exports_weir_stage_aggregate_window_t *window,
                                       aggregator_list_u8_t *acc, aggregator_list_u8_t *ret) {
    need_init();
    weir_buf result = {0};
    weir_result_begin(&result, 1);
    weir_record none = {0};
    none.timestamp = WEIR_NO_TIMESTAMP;
    weir_outputs out;
    weir_error err = {{0}, {0}};
    weir_window w = {window->start_ms, window->end_ms};
    weir_entry_begin(&out, &result, &none, false);
    if (weir_agg_emit(view(key), w, view(acc), &out, &err)) {
        weir_entry_ok(&out);
    } else {
        weir_entry_error(&out, &err);
    }
    aggregator_list_u8_free(key);
    aggregator_list_u8_free(acc);
    give(&result, ret);
}

/* ---------------------------------------------------------------------------------------------
 * Host imports. */

static aggregator_string_t borrow(const char *text) {
    aggregator_string_t s = {(uint8_t *)text, strlen(text)};
    return s;
}

void weir_log(weir_level level, const char *message, const char *const *fields,
              size_t field_count) {
    aggregator_tuple2_string_string_t pairs[16];
    if (field_count > 16) field_count = 16;
    for (size_t i = 0; i < field_count; i++) {
        pairs[i].f0 = borrow(fields[2 * i]);
        pairs[i].f1 = borrow(fields[2 * i + 1]);
    }
    aggregator_string_t text = borrow(message);
    aggregator_list_tuple2_string_string_t list = {pairs, field_count};
    weir_stage_host_log((weir_stage_host_level_t)level, &text, &list);
}

void weir_counter_add(const char *name, uint64_t delta) {
    aggregator_string_t s = borrow(name);
    weir_stage_host_counter_add(&s, delta);
}

void weir_histogram_record(const char *name, double value) {
    aggregator_string_t s = borrow(name);
    weir_stage_host_histogram_record(&s, value);
}

_Noreturn void weir_panic(const char *message) {
    const char *fields[] = {"panic", "true"};
    weir_log(WEIR_ERROR, message, fields, 1);
    __builtin_trap();
}
