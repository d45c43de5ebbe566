/*
 * weir_json.h: a small strict JSON reader and writer for stages (C has no standard one).
 *
 * `weir_json_parse` validates a whole document the way the Rust SDK's serde_json does (RFC 8259:
 * no trailing commas or characters, no leading zeros, no control characters or invalid UTF-8 or
 * unpaired surrogates in strings, finite numbers, at most 127 nested arrays and objects), so a C
 * stage refuses exactly the inputs a Rust stage refuses. Values are spans of the text: nothing is
 * copied until asked.
 */
#ifndef WEIR_JSON_H
#define WEIR_JSON_H

#include "weir.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum weir_json_kind {
    WEIR_JSON_NULL,
    WEIR_JSON_FALSE,
    WEIR_JSON_TRUE,
    WEIR_JSON_NUMBER,
    WEIR_JSON_STRING,
    WEIR_JSON_ARRAY,
    WEIR_JSON_OBJECT,
} weir_json_kind;

/* A JSON value: its kind and its text (a string's text includes the quotes). */
typedef struct weir_json {
    weir_json_kind kind;
    const uint8_t *text;
    size_t len;
} weir_json;

/* Parses `text` as one JSON document. On success returns NULL and sets `*root`; otherwise
 * returns a static description of the first error. */
const char *weir_json_parse(weir_bytes text, weir_json *root);

/* Iterates an object's members in document order: start with `*pos = 0`; returns false at the
 * end. Repeated names are all visited (the last one wins in most readers). */
bool weir_json_next_member(weir_json object, size_t *pos, weir_json *name, weir_json *value);

/* The member `name` of an object (the last one when repeated); false if none. */
bool weir_json_get(weir_json object, const char *name, size_t name_len, weir_json *value);

/* Appends the decoded UTF-8 of a string value to `out`. */
void weir_json_string(weir_json string, weir_buf *out);

/* Whether a string value decodes to exactly `text`. */
bool weir_json_string_eq(weir_json string, const char *text, size_t len);

/* A number as an i64 if it is written as an integer that fits; false otherwise. */
bool weir_json_i64(weir_json number, int64_t *out);
/* A number as the nearest f64. */
double weir_json_f64(weir_json number);

/* Appends `text` (UTF-8) as a JSON string, quoted and escaped. */
void weir_json_write_string(weir_buf *out, const uint8_t *text, size_t len);
/* Appends an f64 in its shortest round-trip form (`2.0`, `43.75`, `1e16`), as serde_json does. */
void weir_json_write_f64(weir_buf *out, double value);
void weir_json_write_i64(weir_buf *out, int64_t value);

#ifdef __cplusplus
}
#endif

#endif
