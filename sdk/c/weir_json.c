/* weir_json.c: see weir_json.h. */
#include "weir_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The nesting serde_json allows (its recursion limit of 128 fails at the 128th level). */
#define MAX_DEPTH 127

typedef struct parser {
    const uint8_t *s;
    size_t len;
    size_t pos;
    int depth;
} parser;

static bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static void skip_ws(parser *p) {
    while (p->pos < p->len && is_ws(p->s[p->pos])) p->pos++;
}

static int hex_digit(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool hex4(const uint8_t *s, size_t len, size_t at, unsigned *out) {
    if (at + 4 > len) return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(s[at + i]);
        if (d < 0) return false;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return true;
}

/* The length of the valid UTF-8 sequence at s[0..len), or 0 if it is not one. */
static size_t utf8_seq(const uint8_t *s, size_t len) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) n = 3, lo = 0xA0;
    else if (c == 0xED) n = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) n = 3;
    else if (c == 0xF0) n = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) n = 4, hi = 0x8F;
    else return 0;
    if (len < n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

static const char *parse_value(parser *p, weir_json *out);

static const char *parse_string(parser *p) {
    p->pos++; /* the opening quote */
    for (;;) {
        if (p->pos >= p->len) return "EOF while parsing a string";
        uint8_t c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            return NULL;
        }
        if (c < 0x20) return "control character (\\u0000-\\u001F) found while parsing a string";
        if (c == '\\') {
            if (p->pos + 1 >= p->len) return "EOF while parsing a string";
            uint8_t e = p->s[p->pos + 1];
            if (e == 'u') {
                unsigned u;
                if (!hex4(p->s, p->len, p->pos + 2, &u)) return "invalid escape";
                p->pos += 6;
                if (u >= 0xDC00 && u <= 0xDFFF) return "lone trailing surrogate in hex escape";
                if (u >= 0xD800 && u <= 0xDBFF) {
                    unsigned lo;
                    if (p->pos + 1 >= p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                        return "unexpected end of hex escape";
                    if (!hex4(p->s, p->len, p->pos + 2, &lo)) return "invalid escape";
                    if (lo < 0xDC00 || lo > 0xDFFF) return "lone leading surrogate in hex escape";
                    p->pos += 6;
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == 0) return "invalid escape";
            p->pos += 2;
            continue;
        }
        size_t n = utf8_seq(p->s + p->pos, p->len - p->pos);
        if (n == 0) return "invalid unicode code point";
        p->pos += n;
    }
}

static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static const char *parse_number(parser *p) {
    size_t start = p->pos;
    if (p->s[p->pos] == '-') p->pos++;
    if (p->pos >= p->len || !is_digit(p->s[p->pos])) return "invalid number";
    if (p->s[p->pos] == '0') {
        p->pos++;
        if (p->pos < p->len && is_digit(p->s[p->pos])) return "invalid number";
    } else {
        while (p->pos < p->len && is_digit(p->s[p->pos])) p->pos++;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (p->pos >= p->len || !is_digit(p->s[p->pos])) return "invalid number";
        while (p->pos < p->len && is_digit(p->s[p->pos])) p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        if (p->pos >= p->len || !is_digit(p->s[p->pos])) return "invalid number";
        while (p->pos < p->len && is_digit(p->s[p->pos])) p->pos++;
    }
    weir_json n = {WEIR_JSON_NUMBER, p->s + start, p->pos - start};
    if (isinf(weir_json_f64(n))) return "number out of range";
    return NULL;
}

static const char *parse_container(parser *p, uint8_t close) {
    if (++p->depth > MAX_DEPTH) return "recursion limit exceeded";
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return NULL;
    }
    for (;;) {
        const char *e;
        weir_json v;
        if (close == '}') {
            if (p->pos >= p->len) return "EOF while parsing an object";
            if (p->s[p->pos] != '"') return "key must be a string";
            if ((e = parse_string(p))) return e;
            skip_ws(p);
            if (p->pos >= p->len) return "EOF while parsing an object";
            if (p->s[p->pos] != ':') return "expected `:`";
            p->pos++;
            skip_ws(p);
        }
        if ((e = parse_value(p, &v))) return e;
        skip_ws(p);
        if (p->pos >= p->len) return close == '}' ? "EOF while parsing an object" : "EOF while parsing a list";
        if (p->s[p->pos] == close) {
            p->pos++;
            p->depth--;
            return NULL;
        }
        if (p->s[p->pos] != ',') return close == '}' ? "expected `,` or `}`" : "expected `,` or `]`";
        p->pos++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == close) return "trailing comma";
    }
}

static const char *parse_literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) return "expected value";
    p->pos += n;
    return NULL;
}

static const char *parse_value(parser *p, weir_json *out) {
    if (p->pos >= p->len) return "EOF while parsing a value";
    size_t start = p->pos;
    const char *e;
    switch (p->s[p->pos]) {
    case 'n': out->kind = WEIR_JSON_NULL, e = parse_literal(p, "null"); break;
    case 't': out->kind = WEIR_JSON_TRUE, e = parse_literal(p, "true"); break;
    case 'f': out->kind = WEIR_JSON_FALSE, e = parse_literal(p, "false"); break;
    case '"': out->kind = WEIR_JSON_STRING, e = parse_string(p); break;
    case '[': out->kind = WEIR_JSON_ARRAY, e = parse_container(p, ']'); break;
    case '{': out->kind = WEIR_JSON_OBJECT, e = parse_container(p, '}'); break;
    default:
        if (p->s[p->pos] == '-' || is_digit(p->s[p->pos])) {
            out->kind = WEIR_JSON_NUMBER, e = parse_number(p);
        } else {
            e = "expected value";
        }
    }
    out->text = p->s + start;
    out->len = p->pos - start;
    return e;
}

const char *weir_json_parse(weir_bytes text, weir_json *root) {
    parser p = {text.data ? text.data : (const uint8_t *)"", text.len, 0, 0};
    skip_ws(&p);
    const char *e = parse_value(&p, root);
    if (e) return e;
    skip_ws(&p);
    if (p.pos != p.len) return "trailing characters";
    return NULL;
}

/* Skips one value of already validated text starting at s[pos]; returns the position after it. */
static size_t skip_value(const uint8_t *s, size_t pos) {
    int depth = 0;
    bool in_string = false;
    do {
        uint8_t c = s[pos++];
        if (in_string) {
            if (c == '\\') pos++;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (depth == 0) {
            /* a number or literal: runs until a delimiter */
            while (!is_ws(s[pos]) && s[pos] != ',' && s[pos] != '}' && s[pos] != ']') pos++;
        }
    } while (depth > 0 || in_string);
    return pos;
}

bool weir_json_next_member(weir_json object, size_t *pos, weir_json *name, weir_json *value) {
    const uint8_t *s = object.text;
    size_t i = *pos == 0 ? 1 : *pos; /* after `{` */
    while (is_ws(s[i]) || s[i] == ',') i++;
    if (s[i] == '}') return false;
    size_t end = skip_value(s, i);
    name->kind = WEIR_JSON_STRING, name->text = s + i, name->len = end - i;
    i = end;
    while (is_ws(s[i]) || s[i] == ':') i++;
    end = skip_value(s, i);
    uint8_t c = s[i];
    value->kind = c == '"'   ? WEIR_JSON_STRING
                  : c == '{' ? WEIR_JSON_OBJECT
                  : c == '[' ? WEIR_JSON_ARRAY
                  : c == 'n' ? WEIR_JSON_NULL
                  : c == 't' ? WEIR_JSON_TRUE
                  : c == 'f' ? WEIR_JSON_FALSE
                             : WEIR_JSON_NUMBER;
    value->text = s + i, value->len = end - i;
    *pos = end;
    return true;
}

bool weir_json_get(weir_json object, const char *name, size_t name_len, weir_json *value) {
    size_t pos = 0;
    weir_json k, v;
    bool found = false;
    while (weir_json_next_member(object, &pos, &k, &v)) {
        if (weir_json_string_eq(k, name, name_len)) *value = v, found = true;
    }
    return found;
}

static void push_utf8(weir_buf *out, unsigned cp) {
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) b[0] = (uint8_t)cp, n = 1;
    else if (cp < 0x800) b[0] = 0xC0 | cp >> 6, b[1] = 0x80 | (cp & 0x3F), n = 2;
    else if (cp < 0x10000)
        b[0] = 0xE0 | cp >> 12, b[1] = 0x80 | (cp >> 6 & 0x3F), b[2] = 0x80 | (cp & 0x3F), n = 3;
    else
        b[0] = 0xF0 | cp >> 18, b[1] = 0x80 | (cp >> 12 & 0x3F), b[2] = 0x80 | (cp >> 6 & 0x3F),
        b[3] = 0x80 | (cp & 0x3F), n = 4;
    weir_buf_push(out, b, n);
}

void weir_json_string(weir_json string, weir_buf *out) {
    const uint8_t *s = string.text + 1;
    size_t n = string.len - 2, i = 0;
    weir_buf_reserve(out, n);
    while (i < n) {
        size_t run = i;
        while (run < n && s[run] != '\\') run++;
        weir_buf_push(out, s + i, run - i);
        i = run;
        if (i >= n) break;
        uint8_t e = s[i + 1];
        i += 2;
        switch (e) {
        case 'b': weir_buf_push_byte(out, '\b'); break;
        case 'f': weir_buf_push_byte(out, '\f'); break;
        case 'n': weir_buf_push_byte(out, '\n'); break;
        case 'r': weir_buf_push_byte(out, '\r'); break;
        case 't': weir_buf_push_byte(out, '\t'); break;
        case 'u': {
            unsigned cp, lo;
            hex4(s, n, i, &cp);
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                hex4(s, n, i + 2, &lo);
                i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            push_utf8(out, cp);
            break;
        }
        default: weir_buf_push_byte(out, e);
        }
    }
}

bool weir_json_string_eq(weir_json string, const char *text, size_t len) {
    if (string.len == len + 2 && memcmp(string.text + 1, text, len) == 0) return true;
    if (!memchr(string.text, '\\', string.len)) return false;
    weir_buf b = {0};
    weir_json_string(string, &b);
    bool eq = b.len == len && (len == 0 || memcmp(b.data, text, len) == 0);
    weir_buf_free(&b);
    return eq;
}

bool weir_json_i64(weir_json number, int64_t *out) {
    const uint8_t *s = number.text;
    size_t n = number.len, i = 0;
    bool neg = s[0] == '-';
    if (neg) i++;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (!is_digit(s[i])) return false;
        unsigned d = s[i] - '0';
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) return false;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)v;
    }
    return true;
}

double weir_json_f64(weir_json number) {
    char small[64];
    char *text = number.len < sizeof small ? small : malloc(number.len + 1);
    if (!text) weir_panic("out of memory");
    memcpy(text, number.text, number.len);
    text[number.len] = 0;
    double v = strtod(text, NULL);
    if (text != small) free(text);
    return v;
}

void weir_json_write_string(weir_buf *out, const uint8_t *text, size_t len) {
    static const char hex[] = "0123456789abcdef";
    weir_buf_reserve(out, len + 2);
    weir_buf_push_byte(out, '"');
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = text[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        weir_buf_push(out, text + start, i - start);
        start = i + 1;
        switch (c) {
        case '"': weir_buf_push(out, "\\\"", 2); break;
        case '\\': weir_buf_push(out, "\\\\", 2); break;
        case '\b': weir_buf_push(out, "\\b", 2); break;
        case '\f': weir_buf_push(out, "\\f", 2); break;
        case '\n': weir_buf_push(out, "\\n", 2); break;
        case '\r': weir_buf_push(out, "\\r", 2); break;
        case '\t': weir_buf_push(out, "\\t", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            weir_buf_push(out, u, 6);
        }
        }
    }
    weir_buf_push(out, text + start, len - start);
    weir_buf_push_byte(out, '"');
}

void weir_json_write_i64(weir_buf *out, int64_t value) {
    char text[24];
    int n = snprintf(text, sizeof text, "%lld", (long long)value);
    weir_buf_push(out, text, (size_t)n);
}

void weir_json_write_f64(weir_buf *out, double value) {
    if (!isfinite(value)) {
        weir_buf_push_str(out, "null");
        return;
    }
    if (value == 0) {
        weir_buf_push_str(out, signbit(value) ? "-0.0" : "0.0");
        return;
    }
    /* The shortest digits that read back as `value`. */
    char sci[40];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(sci, sizeof sci, "%.*e", precision - 1, value);
        if (strtod(sci, NULL) == value) break;
    }
    const char *p = sci;
    if (*p == '-') weir_buf_push_byte(out, '-'), p++;
    char digits[20];
    int n = 0;
    for (; *p != 'e'; p++)
        if (*p != '.') digits[n++] = *p;
    while (n > 1 && digits[n - 1] == '0') n--;
    int kk = atoi(p + 1) + 1; /* value = 0.digits * 10^kk */
    if (n <= kk && kk <= 16) {
        weir_buf_push(out, digits, (size_t)n);
        for (int i = n; i < kk; i++) weir_buf_push_byte(out, '0');
        weir_buf_push(out, ".0", 2);
    } else if (0 < kk && kk <= 16) {
        weir_buf_push(out, digits, (size_t)kk);
        weir_buf_push_byte(out, '.');
        weir_buf_push(out, digits + kk, (size_t)(n - kk));
    } else if (-5 < kk && kk <= 0) {
        weir_buf_push(out, "0.", 2);
        for (int i = kk; i < 0; i++) weir_buf_push_byte(out, '0');
        weir_buf_push(out, digits, (size_t)n);
    } else {
        weir_buf_push_byte(out, (uint8_t)digits[0]);
        if (n > 1) {
            weir_buf_push_byte(out, '.');
            weir_buf_push(out, digits + 1, (size_t)(n - 1));
        }
        char e[8];
        int m = snprintf(e, sizeof e, "e%d", kk - 1);
        weir_buf_push(out, e, (size_t)m);
    }
}
