/*
 * Example Weir stage in C: json-enrich, the same stage as examples-wasm/json-enrich (Rust).
 *
 * Input: a click as a JSON object, such as
 * `{"user":"u17","url":"https://shop.example/products/42?ref=mail","ts":1700000000000}`.
 * Output: the same object (members sorted by name, a repeated name keeping its last value) plus:
 *   domain       the URL's host, lower-cased (ASCII), without port
 *   path         the URL's path (`/` when empty)
 *   section      the path's first segment (`""` for `/`)
 *   ref, utm_*   those query parameters, percent-decoded, when present
 *   hour         the UTC hour (0-23) of `ts` (milliseconds), when `ts` is a number
 * Derived fields overwrite input fields of the same name. Key, headers and timestamp pass through.
 *
 * Config: `{ field = "url" }`: the member that holds the URL (default `url`); anything else is
 * refused (`bad-config`).
 * Errors: `bad-json` (value not a JSON object), `missing-field` (no string at `field`),
 * `bad-url` (not an absolute `scheme://host/...` URL).
 */
#include <stdlib.h>
#include <string.h>

#include "weir.h"
#include "weir_json.h"

static weir_buf field; /* the configured field name */

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

bool weir_init(weir_str config, weir_error *err) {
    weir_buf_clear(&field);
    weir_buf_push_str(&field, "url");
    const char *s = config.data;
    size_t n = config.len;
    while (n && is_space(*s)) s++, n--;
    while (n && is_space(s[n - 1])) n--;
    if (n == 0 || (n == 4 && memcmp(s, "null", 4) == 0)) return true;

    weir_bytes text = {(const uint8_t *)s, n};
    weir_json root, name, value;
    const char *e = weir_json_parse(text, &root);
    if (e) return weir_fail(err, "bad-config", "invalid stage config: %s", e);
    if (root.kind != WEIR_JSON_OBJECT) return weir_fail(err, "bad-config", "invalid stage config: not an object");
    size_t pos = 0;
    bool seen = false;
    while (weir_json_next_member(root, &pos, &name, &value)) {
        if (!weir_json_string_eq(name, "field", 5))
            return weir_fail(err, "bad-config", "invalid stage config: unknown field %.*s, expected `field`",
                             (int)name.len, (const char *)name.text);
        if (seen) return weir_fail(err, "bad-config", "invalid stage config: duplicate field `field`");
        if (value.kind != WEIR_JSON_STRING)
            return weir_fail(err, "bad-config", "invalid stage config: `field` must be a string");
        weir_buf_clear(&field);
        weir_json_string(value, &field);
        seen = true;
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * URLs: `scheme://[userinfo@]host[:port][/path][?query][#fragment]`, checked as the Rust example's
 * parser checks them. */

typedef struct url {
    const uint8_t *host, *path, *query;
    size_t host_len, path_len, query_len;
    bool has_query;
} url;

static bool is_alpha(uint8_t c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }
static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static bool is_alnum(uint8_t c) { return is_alpha(c) || is_digit(c); }

static const uint8_t *find(const uint8_t *s, size_t n, const char *set) {
    for (size_t i = 0; i < n; i++)
        if (strchr(set, s[i]) && s[i]) return s + i;
    return NULL;
}

static bool valid_host(const uint8_t *h, size_t n) {
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        if (n == 2) return false;
        for (size_t i = 1; i < n - 1; i++)
            if (!is_alnum(h[i]) && h[i] != ':' && h[i] != '.' && h[i] != '%') return false;
        return true;
    }
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (h[i] < 0x80 && !is_alnum(h[i]) && !(h[i] && strchr("-._~%!$&'()*+,;=", h[i]))) return false;
    return true;
}

static bool parse_url(const uint8_t *s, size_t n, url *u) {
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] == 0x7f || s[i] == ' ') return false;
    /* scheme */
    size_t sep = 0;
    while (sep + 3 <= n && memcmp(s + sep, "://", 3) != 0) sep++;
    if (sep + 3 > n || sep == 0 || !is_alpha(s[0])) return false;
    for (size_t i = 1; i < sep; i++)
        if (!is_alnum(s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.') return false;
    const uint8_t *rest = s + sep + 3;
    size_t rest_len = n - sep - 3;
    /* authority */
    const uint8_t *end = find(rest, rest_len, "/?#");
    size_t auth_len = end ? (size_t)(end - rest) : rest_len;
    const uint8_t *hp = rest;
    size_t hp_len = auth_len;
    for (size_t i = auth_len; i > 0; i--)
        if (rest[i - 1] == '@') {
            hp = rest + i, hp_len = auth_len - i;
            break;
        }
    const uint8_t *host = hp, *port = NULL;
    size_t host_len = hp_len, port_len = 0;
    if (hp_len && hp[0] == '[') {
        const uint8_t *close = memchr(hp, ']', hp_len);
        if (!close) return false;
        host_len = (size_t)(close - hp) + 1;
        if (host_len < hp_len) {
            if (hp[host_len] != ':') return false;
            port = hp + host_len + 1, port_len = hp_len - host_len - 1;
        }
    } else {
        for (size_t i = hp_len; i > 0; i--)
            if (hp[i - 1] == ':') {
                host_len = i - 1, port = hp + i, port_len = hp_len - i;
                break;
            }
    }
    if (port_len) {
        unsigned long v = 0;
        for (size_t i = 0; i < port_len; i++) {
            if (!is_digit(port[i])) return false;
            v = v * 10 + (port[i] - '0');
            if (v > 65535) return false;
        }
    }
    if (!valid_host(host, host_len)) return false;
    /* path, query (the fragment is dropped) */
    const uint8_t *r = rest + auth_len;
    size_t r_len = rest_len - auth_len;
    const uint8_t *hash = memchr(r, '#', r_len);
    if (hash) r_len = (size_t)(hash - r);
    const uint8_t *q = memchr(r, '?', r_len);
    u->host = host, u->host_len = host_len;
    u->path = r, u->path_len = q ? (size_t)(q - r) : r_len;
    u->has_query = q != NULL;
    u->query = q ? q + 1 : NULL;
    u->query_len = q ? r_len - u->path_len - 1 : 0;
    if (u->path_len == 0) u->path = (const uint8_t *)"/", u->path_len = 1;
    return true;
}

static int hex(uint8_t c) {
    if (is_digit(c)) return c - '0';
    if ((c | 32) >= 'a' && (c | 32) <= 'f') return (c | 32) - 'a' + 10;
    return -1;
}

/* Appends `s` with invalid UTF-8 replaced by U+FFFD, one per maximal invalid subpart (as Rust's
 * `String::from_utf8_lossy` and the WHATWG decoder do). */
static void push_lossy(weir_buf *out, const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            weir_buf_push_byte(out, c);
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) need = 2, lo = 0xA0;
        else if (c == 0xED) need = 2, hi = 0x9F;
        else if (c >= 0xE1 && c <= 0xEF) need = 2;
        else if (c == 0xF0) need = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else if (c == 0xF4) need = 3, hi = 0x8F;
        else {
            weir_buf_push(out, "\xEF\xBF\xBD", 3);
            i++;
            continue;
        }
        size_t j = 1;
        for (; j <= need && i + j < n; j++) {
            uint8_t b = s[i + j];
            if (j == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
        }
        if (j == need + 1) {
            weir_buf_push(out, s + i, j);
        } else {
            weir_buf_push(out, "\xEF\xBF\xBD", 3);
        }
        i += j;
    }
}

/* Percent-decodes form-encoded text (`+` is a space); malformed escapes stay as written. */
static void decode(weir_buf *out, weir_buf *tmp, const uint8_t *s, size_t n) {
    weir_buf_clear(tmp);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            weir_buf_push_byte(tmp, ' ');
        } else if (s[i] == '%' && i + 2 < n && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
            weir_buf_push_byte(tmp, (uint8_t)(hex(s[i + 1]) << 4 | hex(s[i + 2])));
            i += 2;
        } else {
            weir_buf_push_byte(tmp, s[i]);
        }
    }
    push_lossy(out, tmp->data, tmp->len);
}

/* ---------------------------------------------------------------------------------------------
 * The stage. */

/* An output member: name and JSON text, each either in the input or in `scratch` (by offset,
 * as the scratch buffer may move while it grows). */
typedef struct member {
    const uint8_t *name;
    size_t name_off, name_len;
    const uint8_t *json;
    size_t json_off, json_len;
    size_t order;
} member;

static member *members;
static size_t member_cap;
static weir_buf scratch, tmp, url_text, output;

static member *add_member(size_t count) {
    if (count == member_cap) {
        member_cap = member_cap ? member_cap * 2 : 32;
        members = realloc(members, member_cap * sizeof *members);
        if (!members) weir_panic("out of memory");
    }
    memset(&members[count], 0, sizeof *members);
    members[count].order = count;
    return &members[count];
}

static const uint8_t *resolve(const uint8_t *p, size_t off) { return p ? p : scratch.data + off; }

static int by_name(const void *a, const void *b) {
    const member *x = a, *y = b;
    const uint8_t *xn = resolve(x->name, x->name_off), *yn = resolve(y->name, y->name_off);
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = n ? memcmp(xn, yn, n) : 0;
    if (c) return c;
    if (x->name_len != y->name_len) return x->name_len < y->name_len ? -1 : 1;
    return x->order < y->order ? -1 : 1;
}

/* A derived member with a literal name and a string value. */
static void derive_string(size_t *count, const char *name, const uint8_t *value, size_t len) {
    member *m = add_member((*count)++);
    m->name = (const uint8_t *)name, m->name_len = strlen(name);
    m->json_off = scratch.len;
    weir_json_write_string(&scratch, value, len);
    m->json_len = scratch.len - m->json_off;
}

static int64_t utc_hour(int64_t ms) {
    const int64_t hour_ms = 3600000;
    int64_t h = ms / hour_ms;
    if (ms % hour_ms < 0) h--;
    int64_t r = h % 24;
    return r < 0 ? r + 24 : r;
}

bool weir_process(const weir_record *in, weir_outputs *out, weir_error *err) {
    weir_bytes value = in->value.data ? in->value : (weir_bytes){(const uint8_t *)"", 0};
    weir_json root, name, v, url_json, ts;
    const char *e = weir_json_parse(value, &root);
    if (e) return weir_fail(err, "bad-json", "the value is not JSON: %s", e);
    if (root.kind != WEIR_JSON_OBJECT) return weir_fail(err, "bad-json", "the value is not a JSON object");

    if (!weir_json_get(root, (const char *)field.data, field.len, &url_json))
        return weir_fail(err, "missing-field", "no `%.*s` field", (int)field.len, (const char *)field.data);
    if (url_json.kind != WEIR_JSON_STRING)
        return weir_fail(err, "missing-field", "`%.*s` is not a string", (int)field.len, (const char *)field.data);
    weir_buf_clear(&url_text);
    weir_json_string(url_json, &url_text);
    url u;
    if (!parse_url(url_text.data ? url_text.data : (const uint8_t *)"", url_text.len, &u))
        return weir_fail(err, "bad-url", "cannot parse \"%.*s\"", (int)url_text.len, (const char *)url_text.data);

    /* The input's members. */
    weir_buf_clear(&scratch);
    size_t count = 0, pos = 0;
    while (weir_json_next_member(root, &pos, &name, &v)) {
        member *m = add_member(count++);
        if (memchr(name.text, '\\', name.len)) {
            m->name_off = scratch.len;
            weir_json_string(name, &scratch);
            m->name_len = scratch.len - m->name_off;
        } else {
            m->name = name.text + 1, m->name_len = name.len - 2;
        }
        m->json = v.text, m->json_len = v.len;
    }

    /* The derived ones. */
    weir_buf_clear(&tmp);
    size_t host_off = scratch.len;
    for (size_t i = 0; i < u.host_len; i++) {
        uint8_t c = u.host[i];
        weir_buf_push_byte(&scratch, c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    weir_buf lower = {0};
    weir_buf_push(&lower, scratch.data + host_off, u.host_len);
    scratch.len = host_off;
    derive_string(&count, "domain", lower.data, lower.len);
    weir_buf_free(&lower);
    derive_string(&count, "path", u.path, u.path_len);
    const uint8_t *sec = u.path[0] == '/' ? u.path + 1 : u.path;
    size_t sec_len = u.path_len - (size_t)(sec - u.path);
    const uint8_t *slash = memchr(sec, '/', sec_len);
    derive_string(&count, "section", sec, slash ? (size_t)(slash - sec) : sec_len);
    if (u.has_query) {
        const uint8_t *q = u.query, *qend = u.query + u.query_len;
        while (q <= qend) {
            const uint8_t *amp = memchr(q, '&', (size_t)(qend - q));
            const uint8_t *pend = amp ? amp : qend;
            if (pend > q) {
                const uint8_t *eq = memchr(q, '=', (size_t)(pend - q));
                const uint8_t *nend = eq ? eq : pend;
                weir_buf pname = {0};
                decode(&pname, &tmp, q, (size_t)(nend - q));
                if ((pname.len == 3 && memcmp(pname.data, "ref", 3) == 0) ||
                    (pname.len >= 4 && memcmp(pname.data, "utm_", 4) == 0)) {
                    weir_buf pvalue = {0};
                    if (eq) decode(&pvalue, &tmp, eq + 1, (size_t)(pend - eq - 1));
                    member *m = add_member(count++);
                    m->name_off = scratch.len;
                    weir_buf_push(&scratch, pname.data, pname.len);
                    m->name_len = pname.len;
                    m->json_off = scratch.len;
                    weir_json_write_string(&scratch, pvalue.data ? pvalue.data : (const uint8_t *)"", pvalue.len);
                    m->json_len = scratch.len - m->json_off;
                    weir_buf_free(&pvalue);
                }
                weir_buf_free(&pname);
            }
            if (!amp) break;
            q = amp + 1;
        }
    }
    if (weir_json_get(root, "ts", 2, &ts) && ts.kind == WEIR_JSON_NUMBER) {
        int64_t ms;
        if (!weir_json_i64(ts, &ms)) {
            double f = weir_json_f64(ts);
            /* Rust's `f as i64`: truncation, saturating at the ends. */
            ms = f >= 9223372036854775807.0 ? INT64_MAX : f <= -9223372036854775808.0 ? INT64_MIN : (int64_t)f;
        }
        member *m = add_member(count++);
        m->name = (const uint8_t *)"hour", m->name_len = 4;
        m->json_off = scratch.len;
        weir_json_write_i64(&scratch, utc_hour(ms));
        m->json_len = scratch.len - m->json_off;
    }

    /* Sorted by name; of a repeated name the last one (highest order) wins. */
    qsort(members, count, sizeof *members, by_name);
    weir_buf_clear(&output);
    weir_buf_reserve(&output, value.len + value.len / 2 + 64);
    weir_buf_push_byte(&output, '{');
    bool first = true;
    for (size_t i = 0; i < count; i++) {
        member *m = &members[i];
        if (i + 1 < count && members[i + 1].name_len == m->name_len &&
            memcmp(resolve(members[i + 1].name, members[i + 1].name_off), resolve(m->name, m->name_off), m->name_len) == 0)
            continue;
        if (!first) weir_buf_push_byte(&output, ',');
        first = false;
        weir_json_write_string(&output, resolve(m->name, m->name_off), m->name_len);
        weir_buf_push_byte(&output, ':');
        weir_buf_push(&output, resolve(m->json, m->json_off), m->json_len);
    }
    weir_buf_push_byte(&output, '}');
    weir_emit_value(out, weir_buf_bytes(&output));
    return true;
}
