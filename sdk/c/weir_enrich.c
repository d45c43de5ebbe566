/* weir_enrich.c: the enricher world's exports and the host imports, on top of the bindings that
 * wit-bindgen generates from sdk/wit at build time (enricher.h, enricher.c). */
#include <stdlib.h>
#include <string.h>

#include "enricher.h"
#include "weir_internal.h"

static bool initialised;
static weir_batch batch;
/* The result of the last `process` call: the host reads it after the call returns, so it lives
 * until the next call (the post-return hook below keeps it instead of freeing it). */
static weir_buf result;

uint32_t exports_weir_stage_enrich_batch_format(void) { return WEIR_BATCH_FORMAT; }

static void to_stage_error(const weir_error *err, exports_weir_stage_enrich_stage_error_t *out) {
    enricher_string_dup_n(&out->code, err->code, strnlen(err->code, sizeof err->code));
    enricher_string_dup_n(&out->message, err->message, strnlen(err->message, sizeof err->message));
}

bool exports_weir_stage_enrich_init(enricher_string_t *config,
                                    exports_weir_stage_enrich_stage_error_t *ret) {
    weir_error err = {{0}, {0}};
    weir_str text = {(const char *)config->ptr, config->len};
    bool ok = weir_init(text, &err);
    enricher_string_free(config);
    if (!ok) {
        to_stage_error(&err, ret);
        return false;
    }
    initialised = true;
    return true;
}

void exports_weir_stage_enrich_process(enricher_list_u8_t *input, enricher_list_u8_t *ret) {
    if (!initialised) weir_panic("process called before init");
    if (!weir_decode_batch(input->ptr, input->len, &batch))
        weir_panic("the host sent a batch of another format");
    weir_result_begin(&result, batch.count);
    for (uint32_t i = 0; i < batch.count; i++) {
        weir_outputs out;
        weir_error err = {{0}, {0}};
        weir_entry_begin(&out, &result, &batch.records[i], true);
        if (weir_process(&batch.records[i], &out, &err)) {
            weir_entry_ok(&out);
        } else {
            weir_entry_error(&out, &err);
        }
    }
    enricher_list_u8_free(input);
    ret->ptr = result.data;
    ret->len = result.len;
}

__attribute__((__export_name__("cabi_post_weir:stage/enrich@0.1.0#process")))
void __wasm_export_exports_weir_stage_enrich_process_post_return(uint8_t *ret_area) {
    (void)ret_area; /* `result` is reused by the next call */
}

/* ---------------------------------------------------------------------------------------------
 * Host imports. */

static enricher_string_t borrow(const char *text) {
    enricher_string_t s = {(uint8_t *)text, strlen(text)};
    return s;
}

void weir_log(weir_level level, const char *message, const char *const *fields,
              size_t field_count) {
    enricher_tuple2_string_string_t pairs[16];
    if (field_count > 16) field_count = 16;
    for (size_t i = 0; i < field_count; i++) {
        pairs[i].f0 = borrow(fields[2 * i]);
        pairs[i].f1 = borrow(fields[2 * i + 1]);
    }
    enricher_string_t text = borrow(message);
    enricher_list_tuple2_string_string_t list = {pairs, field_count};
    weir_stage_host_log((weir_stage_host_level_t)level, &text, &list);
}

void weir_counter_add(const char *name, uint64_t delta) {
    enricher_string_t s = borrow(name);
    weir_stage_host_counter_add(&s, delta);
}

void weir_histogram_record(const char *name, double value) {
    enricher_string_t s = borrow(name);
    weir_stage_host_histogram_record(&s, value);
}

_Noreturn void weir_panic(const char *message) {
    const char *fields[] = {"panic", "true"};
    weir_log(WEIR_ERROR, message, fields, 1);
    __builtin_trap();
}
