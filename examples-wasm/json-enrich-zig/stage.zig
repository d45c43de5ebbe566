//! Example Weir stage in Zig: json-enrich, the same stage as examples-wasm/json-enrich (Rust).
//!
//! Input: a click as a JSON object, such as
//! `{"user":"u17","url":"https://shop.example/products/42?ref=mail","ts":1700000000000}`.
//! Output: the same object (members sorted by name, a repeated name keeping its last value) plus:
//!   domain       the URL's host, lower-cased (ASCII), without port
//!   path         the URL's path (`/` when empty)
//!   section      the path's first segment (`""` for `/`)
//!   ref, utm_*   those query parameters, percent-decoded, when present
//!   hour         the UTC hour (0-23) of `ts` (milliseconds), when `ts` is a number
//! Derived fields overwrite input fields of the same name. Key, headers and timestamp pass through.
//!
//! Config: `{ field = "url" }`: the member that holds the URL (default `url`); anything else is
//! refused (`bad-config`). Errors: `bad-json` (value not a JSON object), `missing-field` (no
//! string at `field`), `bad-url` (not an absolute `scheme://host/...` URL).
const std = @import("std");
const weir = @import("weir");
const json = weir.json;
const Buf = weir.Buf;

comptime {
    weir.exportEnricher(Stage);
}

/// An output member: its decoded name and JSON text, each a span of the input or of `scratch`.
const Span = struct {
    in_scratch: bool,
    start: usize,
    len: usize,
    input: []const u8 = "",

    fn get(self: Span, scratch: *const Buf) []const u8 {
        return if (self.in_scratch) scratch.items()[self.start .. self.start + self.len] else self.input;
    }
};

const Member = struct { name: Span, value: Span, order: usize };

const Stage = struct {
    field: Buf = .{},
    scratch: Buf = .{},
    output: Buf = .{},
    members: []Member = &.{},

    pub fn init(config: []const u8, diag: *weir.Diagnostic) weir.Error!Stage {
        var s = Stage{};
        s.field.append("url");
        const text = std.mem.trim(u8, config, " \t\n\r\x0b\x0c");
        if (text.len == 0 or std.mem.eql(u8, text, "null")) return s;
        const root = json.parse(text) catch |e|
            return diag.fail("bad-config", "invalid stage config: {s}", .{@errorName(e)});
        if (root.kind != .object) return diag.fail("bad-config", "invalid stage config: not an object", .{});
        var seen = false;
        var it = root.members();
        while (it.next()) |m| {
            if (!m.name.stringEql("field"))
                return diag.fail("bad-config", "invalid stage config: unknown field {s}, expected `field`", .{m.name.text});
            if (seen) return diag.fail("bad-config", "invalid stage config: duplicate field `field`", .{});
            if (m.value.kind != .string) return diag.fail("bad-config", "invalid stage config: `field` must be a string", .{});
            s.field.clear();
            m.value.appendString(&s.field);
            seen = true;
        }
        return s;
    }

    fn member(self: *Stage, n: usize) *Member {
        if (n >= self.members.len) {
            const cap = @max(32, self.members.len * 2);
            const p = std.c.realloc(if (self.members.len > 0) self.members.ptr else null, cap * @sizeOf(Member)) orelse weir.trap("out of memory");
            self.members = @as([*]Member, @ptrCast(@alignCast(p)))[0..cap];
        }
        self.members[n].order = n;
        return &self.members[n];
    }

    /// Appends `text` to the scratch buffer as a JSON string; returns its span.
    fn jsonString(self: *Stage, text: []const u8) Span {
        const start = self.scratch.len;
        json.writeString(&self.scratch, text);
        return .{ .in_scratch = true, .start = start, .len = self.scratch.len - start };
    }

    fn literal(text: []const u8) Span {
        return .{ .in_scratch = false, .start = 0, .len = text.len, .input = text };
    }

    pub fn process(self: *Stage, in: *const weir.Record, out: *weir.Outputs) weir.Error!void {
        const value = in.value orelse "";
        const root = json.parse(value) catch |e|
            return out.fail("bad-json", "the value is not JSON: {s}", .{@errorName(e)});
        if (root.kind != .object) return out.fail("bad-json", "the value is not a JSON object", .{});
        const field = self.field.items();
        const url_json = root.get(field) orelse return out.fail("missing-field", "no `{s}` field", .{field});
        if (url_json.kind != .string) return out.fail("missing-field", "`{s}` is not a string", .{field});

        self.scratch.clear();
        url_json.appendString(&self.scratch);
        // The URL text is copied: the scratch buffer moves as it grows.
        var url_buf = Buf{};
        defer url_buf.deinit();
        url_buf.append(self.scratch.items());
        self.scratch.clear();
        const u = parseUrl(url_buf.items()) orelse
            return out.fail("bad-url", "cannot parse \"{s}\"", .{url_buf.items()});

        // The input's members, then the derived ones.
        var n: usize = 0;
        var it = root.members();
        while (it.next()) |m| {
            const mem = self.member(n);
            n += 1;
            if (std.mem.indexOfScalar(u8, m.name.text, '\\') != null) {
                const start = self.scratch.len;
                m.name.appendString(&self.scratch);
                mem.name = .{ .in_scratch = true, .start = start, .len = self.scratch.len - start };
            } else {
                mem.name = literal(m.name.text[1 .. m.name.text.len - 1]);
            }
            mem.value = literal(m.value.text);
        }
        var lower = Buf{};
        defer lower.deinit();
        for (u.host) |c| lower.appendByte(std.ascii.toLower(c));
        self.derive(&n, literal("domain"), lower.items());
        self.derive(&n, literal("path"), u.path);
        const trimmed = if (u.path.len > 0 and u.path[0] == '/') u.path[1..] else u.path;
        const section = trimmed[0 .. std.mem.indexOfScalar(u8, trimmed, '/') orelse trimmed.len];
        self.derive(&n, literal("section"), section);
        if (u.query) |query| {
            var pairs = std.mem.splitScalar(u8, query, '&');
            while (pairs.next()) |pair| {
                if (pair.len == 0) continue;
                const eq = std.mem.indexOfScalar(u8, pair, '=');
                var name = Buf{};
                defer name.deinit();
                decode(&name, pair[0 .. eq orelse pair.len]);
                if (std.mem.eql(u8, name.items(), "ref") or std.mem.startsWith(u8, name.items(), "utm_")) {
                    var v = Buf{};
                    defer v.deinit();
                    if (eq) |e| decode(&v, pair[e + 1 ..]);
                    const start = self.scratch.len;
                    self.scratch.append(name.items());
                    const name_span = Span{ .in_scratch = true, .start = start, .len = name.len };
                    self.derive(&n, name_span, v.items());
                }
            }
        }
        if (root.get("ts")) |ts| {
            if (ts.kind == .number) {
                const ms = ts.int() orelse saturate(ts.float());
                var b: [24]u8 = undefined;
                const text = std.fmt.bufPrint(&b, "{d}", .{utcHour(ms)}) catch unreachable;
                const mem = self.member(n);
                n += 1;
                mem.name = literal("hour");
                const start = self.scratch.len;
                self.scratch.append(text);
                mem.value = .{ .in_scratch = true, .start = start, .len = text.len };
            }
        }

        // Sorted by name; of a repeated name the last one wins.
        const Ctx = struct {
            scratch: *const Buf,
            fn less(ctx: @This(), a: Member, b: Member) bool {
                return switch (std.mem.order(u8, a.name.get(ctx.scratch), b.name.get(ctx.scratch))) {
                    .lt => true,
                    .gt => false,
                    .eq => a.order < b.order,
                };
            }
        };
        const members = self.members[0..n];
        std.mem.sort(Member, members, Ctx{ .scratch = &self.scratch }, Ctx.less);
        const o = &self.output;
        o.clear();
        o.reserve(value.len + value.len / 2 + 64);
        o.appendByte('{');
        var first = true;
        for (members, 0..) |m, i| {
            const name = m.name.get(&self.scratch);
            if (i + 1 < n and std.mem.eql(u8, members[i + 1].name.get(&self.scratch), name)) continue;
            if (!first) o.appendByte(',');
            first = false;
            json.writeString(o, name);
            o.appendByte(':');
            o.append(m.value.get(&self.scratch));
        }
        o.appendByte('}');
        out.emitValue(o.items());
    }

    fn derive(self: *Stage, n: *usize, name: Span, text: []const u8) void {
        const value = self.jsonString(text);
        const mem = self.member(n.*);
        n.* += 1;
        mem.name = name;
        mem.value = value;
    }
};

/// Rust's `f as i64`: truncation, saturating at the ends.
fn saturate(f: f64) i64 {
    if (f >= 9223372036854775807.0) return std.math.maxInt(i64);
    if (f <= -9223372036854775808.0) return std.math.minInt(i64);
    return @intFromFloat(f);
}

fn utcHour(ms: i64) i64 {
    return @mod(@divFloor(ms, 3_600_000), 24);
}

// ---------------------------------------------------------------------------------------------
// URLs: `scheme://[userinfo@]host[:port][/path][?query][#fragment]`, checked as the Rust
// example's parser checks them.

const Url = struct { host: []const u8, path: []const u8, query: ?[]const u8 };

fn parseUrl(s: []const u8) ?Url {
    for (s) |c| if (c < 0x20 or c == 0x7f or c == ' ') return null;
    const sep = std.mem.indexOf(u8, s, "://") orelse return null;
    const scheme = s[0..sep];
    if (scheme.len == 0 or !std.ascii.isAlphabetic(scheme[0])) return null;
    for (scheme[1..]) |c| if (!std.ascii.isAlphanumeric(c) and c != '+' and c != '-' and c != '.') return null;
    var rest = s[sep + 3 ..];
    const end = std.mem.indexOfAny(u8, rest, "/?#") orelse rest.len;
    const authority = rest[0..end];
    rest = rest[end..];
    const host_port = if (std.mem.lastIndexOfScalar(u8, authority, '@')) |at| authority[at + 1 ..] else authority;
    var host = host_port;
    var port: []const u8 = "";
    if (host_port.len > 0 and host_port[0] == '[') {
        const close = std.mem.indexOfScalar(u8, host_port, ']') orelse return null;
        host = host_port[0 .. close + 1];
        const after = host_port[close + 1 ..];
        if (after.len > 0) {
            if (after[0] != ':') return null;
            port = after[1..];
        }
    } else if (std.mem.lastIndexOfScalar(u8, host_port, ':')) |colon| {
        host = host_port[0..colon];
        port = host_port[colon + 1 ..];
    }
    if (port.len > 0) {
        var v: u32 = 0;
        for (port) |c| {
            if (!std.ascii.isDigit(c)) return null;
            v = v * 10 + (c - '0');
            if (v > 65535) return null;
        }
    }
    if (!validHost(host)) return null;
    if (std.mem.indexOfScalar(u8, rest, '#')) |hash| rest = rest[0..hash];
    var path = rest;
    var query: ?[]const u8 = null;
    if (std.mem.indexOfScalar(u8, rest, '?')) |q| {
        path = rest[0..q];
        query = rest[q + 1 ..];
    }
    return .{ .host = host, .path = if (path.len == 0) "/" else path, .query = query };
}

fn validHost(h: []const u8) bool {
    if (h.len >= 2 and h[0] == '[' and h[h.len - 1] == ']') {
        const ip6 = h[1 .. h.len - 1];
        if (ip6.len == 0) return false;
        for (ip6) |c| if (!std.ascii.isAlphanumeric(c) and c != ':' and c != '.' and c != '%') return false;
        return true;
    }
    if (h.len == 0) return false;
    for (h) |c| {
        if (c < 0x80 and !std.ascii.isAlphanumeric(c) and std.mem.indexOfScalar(u8, "-._~%!$&'()*+,;=", c) == null) return false;
    }
    return true;
}

fn hexVal(c: u8) ?u8 {
    return std.fmt.charToDigit(c, 16) catch null;
}

/// Percent-decodes form-encoded text (`+` is a space) into `out`; malformed escapes stay as
/// written, invalid UTF-8 becomes U+FFFD, one per maximal invalid subpart (as Rust's
/// `String::from_utf8_lossy` does).
fn decode(out: *Buf, s: []const u8) void {
    var raw = Buf{};
    defer raw.deinit();
    var i: usize = 0;
    while (i < s.len) : (i += 1) {
        if (s[i] == '+') {
            raw.appendByte(' ');
        } else if (s[i] == '%' and i + 2 < s.len and hexVal(s[i + 1]) != null and hexVal(s[i + 2]) != null) {
            raw.appendByte(hexVal(s[i + 1]).? << 4 | hexVal(s[i + 2]).?);
            i += 2;
        } else raw.appendByte(s[i]);
    }
    const r = raw.items();
    i = 0;
    while (i < r.len) {
        const c = r[i];
        if (c < 0x80) {
            out.appendByte(c);
            i += 1;
            continue;
        }
        var need: usize = 0;
        var lo: u8 = 0x80;
        var hi: u8 = 0xBF;
        switch (c) {
            0xC2...0xDF => need = 1,
            0xE0 => {
                need = 2;
                lo = 0xA0;
            },
            0xED => {
                need = 2;
                hi = 0x9F;
            },
            0xE1...0xEC, 0xEE, 0xEF => need = 2,
            0xF0 => {
                need = 3;
                lo = 0x90;
            },
            0xF1...0xF3 => need = 3,
            0xF4 => {
                need = 3;
                hi = 0x8F;
            },
            else => {
                out.append("\u{FFFD}");
                i += 1;
                continue;
            },
        }
        var j: usize = 1;
        while (j <= need and i + j < r.len) : (j += 1) {
            const b = r[i + j];
            if (if (j == 1) (b < lo or b > hi) else (b < 0x80 or b > 0xBF)) break;
        }
        if (j == need + 1) out.append(r[i .. i + j]) else out.append("\u{FFFD}");
        i += j;
    }
}
