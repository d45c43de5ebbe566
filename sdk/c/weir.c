/* weir.c: the world-independent part of the C SDK: buffers, errors and the batch encoding
 * (sdk/wit/BATCH.md, format 3). */
#include "weir_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool weir_fail(weir_error *err, const char *code, const char *fmt, ...) {
    snprintf(err->code, sizeof err->code, "%s", code);
    va_list args;
    va_start(args, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, args);
    va_end(args);
    return false;
}

void weir_buf_reserve(weir_buf *b, size_t extra) {
    if (b->cap - b->len >= extra) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra) cap *= 2;
    uint8_t *data = realloc(b->data, cap);
    if (!data) weir_panic("out of memory");
    b->data = data, b->cap = cap;
}

void weir_buf_push(weir_buf *b, const void *data, size_t len) {
    if (len == 0) return;
    weir_buf_reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void weir_buf_push_byte(weir_buf *b, uint8_t byte) {
    if (b->len == b->cap) weir_buf_reserve(b, 1);
    b->data[b->len++] = byte;
}

void weir_buf_push_str(weir_buf *b, const char *text) { weir_buf_push(b, text, strlen(text)); }

void weir_buf_clear(weir_buf *b) { b->len = 0; }

void weir_buf_free(weir_buf *b) {
    free(b->data);
    b->data = NULL, b->len = b->cap = 0;
}

bool weir_bytes_eq(weir_bytes a, const char *text) {
    size_t n = strlen(text);
    return a.data && a.len == n && memcmp(a.data, text, n) == 0;
}

bool weir_bytes_contains(weir_bytes haystack, weir_bytes needle) {
    if (!haystack.data || needle.len > haystack.len) return false;
    if (needle.len == 0) return true;
    for (size_t i = 0; i + needle.len <= haystack.len; i++)
        if (haystack.data[i] == needle.data[0] &&
            memcmp(haystack.data + i, needle.data, needle.len) == 0)
            return true;
    return false;
}

weir_bytes weir_header_get(const weir_record *rec, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < rec->header_count; i++) {
        weir_str h = rec->headers[i].name;
        if (h.len == n && memcmp(h.data, name, n) == 0) return rec->headers[i].value;
    }
    weir_bytes absent = {NULL, 0};
    return absent;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding an input batch. */

typedef struct reader {
    const uint8_t *s;
    size_t len;
    size_t pos;
} reader;

static void need(reader *r, size_t n) {
    if (r->len - r->pos < n) weir_panic("the host sent a truncated batch");
}

static uint32_t read_u32(reader *r) {
    need(r, 4);
    uint32_t v;
    memcpy(&v, r->s + r->pos, 4);
    r->pos += 4;
    return v;
}

static int64_t read_i64(reader *r) {
    need(r, 8);
    int64_t v;
    memcpy(&v, r->s + r->pos, 8);
    r->pos += 8;
    return v;
}

static weir_bytes read_bytes(reader *r) {
    uint32_t n = read_u32(r);
    weir_bytes out = {NULL, 0};
    if (n == UINT32_MAX) return out;
    need(r, n);
    out.data = r->s + r->pos, out.len = n;
    r->pos += n;
    return out;
}

/* The fields of the record that starts at `r`'s position: a reader that ends where the record's
 * length says it does; `r` moves past the record. */
static reader record_fields(reader *r) {
    uint32_t n = read_u32(r);
    need(r, n);
    reader fields = {r->s, r->pos + n, r->pos};
    r->pos += n;
    return fields;
}

bool weir_decode_batch(const uint8_t *data, size_t len, weir_batch *batch) {
    reader r = {data, len, 0};
    if (read_u32(&r) != WEIR_BATCH_FORMAT) return false;
    uint32_t count = read_u32(&r);
    weir_bytes topic = read_bytes(&r);
    batch->topic.data = (const char *)topic.data, batch->topic.len = topic.len;
    batch->partition = (int32_t)read_u32(&r);
    /* Headers: counted first so that one array holds them all (a header takes 8 bytes at least). */
    size_t header_total = 0, start = r.pos;
    for (uint32_t i = 0; i < count; i++) {
        reader f = record_fields(&r);
        read_i64(&f), read_i64(&f), read_bytes(&f), read_bytes(&f);
        uint32_t h = read_u32(&f);
        if (h > (f.len - f.pos) / 8) weir_panic("the host sent a malformed batch");
        header_total += h;
    }
    if (batch->record_cap < count) {
        free(batch->records);
        batch->records = malloc(count * sizeof *batch->records);
        if (!batch->records) weir_panic("out of memory");
        batch->record_cap = count;
    }
    batch->count = count;
    if (batch->header_cap < header_total) {
        free(batch->headers);
        batch->headers = malloc(header_total * sizeof *batch->headers);
        if (!batch->headers) weir_panic("out of memory");
        batch->header_cap = header_total;
    }
    r.pos = start;
    weir_header *h = batch->headers;
    for (uint32_t i = 0; i < count; i++) {
        weir_record *rec = &batch->records[i];
        reader f = record_fields(&r);
        rec->offset = read_i64(&f);
        rec->timestamp = read_i64(&f);
        rec->key = read_bytes(&f);
        rec->value = read_bytes(&f);
        rec->header_count = read_u32(&f);
        rec->headers = h;
        for (size_t j = 0; j < rec->header_count; j++, h++) {
            weir_bytes name = read_bytes(&f);
            h->name.data = (const char *)(name.data ? name.data : (const uint8_t *)"");
            h->name.len = name.len;
            h->value = read_bytes(&f);
        }
        if (f.pos != f.len) weir_panic("the host sent a malformed batch");
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Writing a batch result. */

static void put_u32(weir_buf *b, uint32_t v) { weir_buf_push(b, &v, 4); }
static void put_i64(weir_buf *b, int64_t v) { weir_buf_push(b, &v, 8); }
static void put_bytes(weir_buf *b, weir_bytes v) {
    if (!v.data) {
        put_u32(b, UINT32_MAX);
        return;
    }
    put_u32(b, (uint32_t)v.len);
    weir_buf_push(b, v.data, v.len);
}

void weir_result_begin(weir_buf *b, uint32_t entries) {
    weir_buf_clear(b);
    put_u32(b, WEIR_BATCH_FORMAT);
    put_u32(b, entries);
}

void weir_entry_begin(weir_outputs *out, weir_buf *b, const weir_record *in, bool allow_same) {
    out->buf = b;
    out->in = in;
    out->allow_same = allow_same;
    out->entry_start = b->len;
    out->count = 0;
    out->input_only = false;
    weir_buf_push_byte(b, 0);
    put_u32(b, 0);
}

void weir_entry_ok(weir_outputs *out) {
    if (out->count == 1 && out->input_only) {
        /* Tag 2: the one output is the input, unchanged. */
        out->buf->len = out->entry_start;
        weir_buf_push_byte(out->buf, 2);
        return;
    }
    memcpy(out->buf->data + out->entry_start + 1, &out->count, 4);
}

void weir_entry_error(weir_outputs *out, const weir_error *err) {
    weir_buf *b = out->buf;
    b->len = out->entry_start;
    weir_buf_push_byte(b, 1);
    size_t code = strnlen(err->code, sizeof err->code);
    size_t message = strnlen(err->message, sizeof err->message);
    put_u32(b, (uint32_t)code);
    weir_buf_push(b, err->code, code);
    put_u32(b, (uint32_t)message);
    weir_buf_push(b, err->message, message);
}

static bool same_bytes(weir_bytes a, weir_bytes b) { return a.data == b.data && a.len == b.len; }

void weir_emit(weir_outputs *out, const weir_record *rec) {
    const weir_record *in = out->in;
    weir_buf *b = out->buf;
    uint8_t same = 0;
    if (out->allow_same) {
        if (same_bytes(rec->key, in->key)) same |= 1;
        if (same_bytes(rec->value, in->value)) same |= 2;
        if (rec->headers == in->headers && rec->header_count == in->header_count) same |= 4;
    }
    int64_t timestamp = out->allow_same && rec->timestamp == in->timestamp ? WEIR_NO_TIMESTAMP
                                                                           : rec->timestamp;
    out->input_only = same == 7 && timestamp == WEIR_NO_TIMESTAMP;
    weir_buf_push_byte(b, same);
    put_i64(b, timestamp);
    if (!(same & 1)) put_bytes(b, rec->key);
    if (!(same & 2)) put_bytes(b, rec->value);
    if (!(same & 4)) {
        put_u32(b, (uint32_t)rec->header_count);
        for (size_t i = 0; i < rec->header_count; i++) {
            weir_bytes name = {(const uint8_t *)rec->headers[i].name.data, rec->headers[i].name.len};
            put_bytes(b, name);
            put_bytes(b, rec->headers[i].value);
        }
    }
    out->count++;
}

void weir_emit_value(weir_outputs *out, weir_bytes value) {
    weir_record rec = *out->in;
    rec.value = value;
    weir_emit(out, &rec);
}

void weir_emit_input(weir_outputs *out) { weir_emit(out, out->in); }

const weir_record *weir_outputs_input(const weir_outputs *out) { return out->in; }
