/* weir_internal.h: shared by the SDK's own files, not by stages. */
#ifndef WEIR_INTERNAL_H
#define WEIR_INTERNAL_H

#include "weir.h"

struct weir_outputs {
    weir_buf *buf;
    const weir_record *in;
    bool allow_same; /* false for aggregate emits, which have no input */
    size_t entry_start;
    uint32_t count;
    bool input_only; /* the last output is the input, unchanged (same 7, no timestamp) */
};

/* A decoded input batch; its arrays are reused from batch to batch. */
typedef struct weir_batch {
    weir_str topic;
    int32_t partition;
    uint32_t count;
    weir_record *records;
    size_t record_cap;
    weir_header *headers;
    size_t header_cap;
} weir_batch;

/* Decodes an input batch; false if its format is not ours. */
bool weir_decode_batch(const uint8_t *data, size_t len, weir_batch *batch);
/* Starts a batch result of `entries` entries in `b` (cleared first). */
void weir_result_begin(weir_buf *b, uint32_t entries);
/* Starts the entry of input `in`; end it with `weir_entry_ok` or `weir_entry_error`. */
void weir_entry_begin(weir_outputs *out, weir_buf *b, const weir_record *in, bool allow_same);
void weir_entry_ok(weir_outputs *out);
void weir_entry_error(weir_outputs *out, const weir_error *err);

#endif
