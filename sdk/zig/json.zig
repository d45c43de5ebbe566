//! A small strict JSON reader and writer. `parse` validates a whole document the way the Rust
//! SDK's serde_json does (RFC 8259: no trailing commas or characters, no leading zeros, no
//! control characters, invalid UTF-8 or unpaired surrogates in strings, finite numbers, at most
//! 127 nested arrays and objects), so a Zig stage refuses exactly the inputs a Rust stage
//! refuses. Values are views of the text: nothing is copied until asked.
const std = @import("std");
const Buf = @import("weir.zig").Buf;

pub const Kind = enum { null, false, true, number, string, array, object };

pub const ParseError = error{
    UnexpectedEnd,
    ControlCharacterInString,
    InvalidEscape,
    UnpairedSurrogate,
    InvalidUtf8,
    InvalidNumber,
    NumberOutOfRange,
    RecursionLimitExceeded,
    KeyMustBeAString,
    ExpectedColon,
    ExpectedCommaOrEnd,
    TrailingComma,
    ExpectedValue,
    TrailingCharacters,
};

const max_depth = 127;

/// A JSON value: its kind and its text (a string's text includes the quotes).
pub const Value = struct {
    kind: Kind,
    text: []const u8,

    /// An object's members in document order (a repeated name is yielded each time).
    pub fn members(self: Value) Members {
        return .{ .s = self.text, .pos = 1 };
    }

    /// An object's member `name` (the last one when repeated).
    pub fn get(self: Value, name: []const u8) ?Value {
        var found: ?Value = null;
        var it = self.members();
        while (it.next()) |m| {
            if (m.name.stringEql(name)) found = m.value;
        }
        return found;
    }

    /// Appends a string value's decoded UTF-8 to `out`.
    pub fn appendString(self: Value, out: *Buf) void {
        const s = self.text[1 .. self.text.len - 1];
        var i: usize = 0;
        out.reserve(s.len);
        while (i < s.len) {
            const run = std.mem.indexOfScalarPos(u8, s, i, '\\') orelse s.len;
            out.append(s[i..run]);
            i = run;
            if (i >= s.len) break;
            const e = s[i + 1];
            i += 2;
            switch (e) {
                'b' => out.appendByte(8),
                'f' => out.appendByte(12),
                'n' => out.appendByte('\n'),
                'r' => out.appendByte('\r'),
                't' => out.appendByte('\t'),
                'u' => {
                    var cp: u21 = hex4(s, i).?;
                    i += 4;
                    if (cp >= 0xD800 and cp <= 0xDBFF) {
                        const lo = hex4(s, i + 2).?;
                        i += 6;
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    var b: [4]u8 = undefined;
                    const n = std.unicode.utf8Encode(cp, &b) catch unreachable;
                    out.append(b[0..n]);
                },
                else => out.appendByte(e),
            }
        }
    }

    /// Whether a string value decodes to exactly `text`.
    pub fn stringEql(self: Value, text: []const u8) bool {
        if (std.mem.indexOfScalar(u8, self.text, '\\') == null)
            return self.text.len == text.len + 2 and std.mem.eql(u8, self.text[1 .. self.text.len - 1], text);
        var b = Buf{};
        defer b.deinit();
        self.appendString(&b);
        return std.mem.eql(u8, b.items(), text);
    }

    /// A number written as an integer that fits an i64.
    pub fn int(self: Value) ?i64 {
        return std.fmt.parseInt(i64, self.text, 10) catch null;
    }

    /// A number as the nearest f64 (±inf when out of range).
    pub fn float(self: Value) f64 {
        return std.fmt.parseFloat(f64, self.text) catch std.math.nan(f64);
    }
};

pub const Member = struct { name: Value, value: Value };

pub const Members = struct {
    s: []const u8,
    pos: usize,

    pub fn next(self: *Members) ?Member {
        const s = self.s;
        var i = self.pos;
        while (isWs(s[i]) or s[i] == ',') i += 1;
        if (s[i] == '}') return null;
        var end = skipValue(s, i);
        const name = Value{ .kind = .string, .text = s[i..end] };
        i = end;
        while (isWs(s[i]) or s[i] == ':') i += 1;
        end = skipValue(s, i);
        const value = Value{ .kind = kindOf(s[i]), .text = s[i..end] };
        self.pos = end;
        return .{ .name = name, .value = value };
    }
};

fn kindOf(c: u8) Kind {
    return switch (c) {
        '"' => .string,
        '{' => .object,
        '[' => .array,
        'n' => .null,
        't' => .true,
        'f' => .false,
        else => .number,
    };
}

fn isWs(c: u8) bool {
    return c == ' ' or c == '\t' or c == '\n' or c == '\r';
}

fn isDigit(c: u8) bool {
    return c >= '0' and c <= '9';
}

fn hex4(s: []const u8, at: usize) ?u21 {
    if (at + 4 > s.len) return null;
    var v: u21 = 0;
    for (s[at .. at + 4]) |c| {
        const d: u21 = switch (c) {
            '0'...'9' => c - '0',
            'a'...'f' => c - 'a' + 10,
            'A'...'F' => c - 'A' + 10,
            else => return null,
        };
        v = v << 4 | d;
    }
    return v;
}

/// Skips one value of validated text from s[pos]; returns the position after it.
fn skipValue(s: []const u8, start: usize) usize {
    var pos = start;
    var depth: usize = 0;
    var in_string = false;
    while (true) {
        const c = s[pos];
        pos += 1;
        if (in_string) {
            if (c == '\\') pos += 1 else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' or c == '[') {
            depth += 1;
        } else if (c == '}' or c == ']') {
            depth -= 1;
        } else if (depth == 0) {
            while (pos < s.len and !isWs(s[pos]) and s[pos] != ',' and s[pos] != '}' and s[pos] != ']') pos += 1;
        }
        if (depth == 0 and !in_string) return pos;
    }
}

const Parser = struct {
    s: []const u8,
    pos: usize = 0,
    depth: usize = 0,

    fn skipWs(p: *Parser) void {
        while (p.pos < p.s.len and isWs(p.s[p.pos])) p.pos += 1;
    }

    fn value(p: *Parser) ParseError!Value {
        if (p.pos >= p.s.len) return error.UnexpectedEnd;
        const start = p.pos;
        const kind: Kind = switch (p.s[p.pos]) {
            'n' => blk: {
                try p.literal("null");
                break :blk .null;
            },
            't' => blk: {
                try p.literal("true");
                break :blk .true;
            },
            'f' => blk: {
                try p.literal("false");
                break :blk .false;
            },
            '"' => blk: {
                try p.string();
                break :blk .string;
            },
            '[' => blk: {
                try p.container(']');
                break :blk .array;
            },
            '{' => blk: {
                try p.container('}');
                break :blk .object;
            },
            '-', '0'...'9' => blk: {
                try p.number();
                break :blk .number;
            },
            else => return error.ExpectedValue,
        };
        return .{ .kind = kind, .text = p.s[start..p.pos] };
    }

    fn literal(p: *Parser, word: []const u8) ParseError!void {
        if (!std.mem.startsWith(u8, p.s[p.pos..], word)) return error.ExpectedValue;
        p.pos += word.len;
    }

    fn string(p: *Parser) ParseError!void {
        p.pos += 1;
        while (true) {
            if (p.pos >= p.s.len) return error.UnexpectedEnd;
            const c = p.s[p.pos];
            if (c == '"') {
                p.pos += 1;
                return;
            }
            if (c < 0x20) return error.ControlCharacterInString;
            if (c == '\\') {
                if (p.pos + 1 >= p.s.len) return error.UnexpectedEnd;
                const e = p.s[p.pos + 1];
                if (e == 'u') {
                    const u = hex4(p.s, p.pos + 2) orelse return error.InvalidEscape;
                    p.pos += 6;
                    if (u >= 0xDC00 and u <= 0xDFFF) return error.UnpairedSurrogate;
                    if (u >= 0xD800 and u <= 0xDBFF) {
                        if (p.pos + 1 >= p.s.len or p.s[p.pos] != '\\' or p.s[p.pos + 1] != 'u') return error.UnpairedSurrogate;
                        const lo = hex4(p.s, p.pos + 2) orelse return error.InvalidEscape;
                        if (lo < 0xDC00 or lo > 0xDFFF) return error.UnpairedSurrogate;
                        p.pos += 6;
                    }
                    continue;
                }
                switch (e) {
                    '"', '\\', '/', 'b', 'f', 'n', 'r', 't' => p.pos += 2,
                    else => return error.InvalidEscape,
                }
                continue;
            }
            if (c < 0x80) {
                p.pos += 1;
                continue;
            }
            const n = std.unicode.utf8ByteSequenceLength(c) catch return error.InvalidUtf8;
            if (p.pos + n > p.s.len) return error.InvalidUtf8;
            _ = std.unicode.utf8Decode(p.s[p.pos .. p.pos + n]) catch return error.InvalidUtf8;
            p.pos += n;
        }
    }

    fn digits(p: *Parser) bool {
        const start = p.pos;
        while (p.pos < p.s.len and isDigit(p.s[p.pos])) p.pos += 1;
        return p.pos > start;
    }

    fn number(p: *Parser) ParseError!void {
        const start = p.pos;
        if (p.s[p.pos] == '-') p.pos += 1;
        if (p.pos >= p.s.len or !isDigit(p.s[p.pos])) return error.InvalidNumber;
        if (p.s[p.pos] == '0') {
            p.pos += 1;
            if (p.pos < p.s.len and isDigit(p.s[p.pos])) return error.InvalidNumber;
        } else _ = p.digits();
        if (p.pos < p.s.len and p.s[p.pos] == '.') {
            p.pos += 1;
            if (!p.digits()) return error.InvalidNumber;
        }
        if (p.pos < p.s.len and (p.s[p.pos] == 'e' or p.s[p.pos] == 'E')) {
            p.pos += 1;
            if (p.pos < p.s.len and (p.s[p.pos] == '+' or p.s[p.pos] == '-')) p.pos += 1;
            if (!p.digits()) return error.InvalidNumber;
        }
        const v = (Value{ .kind = .number, .text = p.s[start..p.pos] }).float();
        if (std.math.isInf(v)) return error.NumberOutOfRange;
    }

    fn container(p: *Parser, end: u8) ParseError!void {
        p.depth += 1;
        if (p.depth > max_depth) return error.RecursionLimitExceeded;
        p.pos += 1;
        p.skipWs();
        if (p.pos < p.s.len and p.s[p.pos] == end) {
            p.pos += 1;
            p.depth -= 1;
            return;
        }
        while (true) {
            if (end == '}') {
                if (p.pos >= p.s.len) return error.UnexpectedEnd;
                if (p.s[p.pos] != '"') return error.KeyMustBeAString;
                try p.string();
                p.skipWs();
                if (p.pos >= p.s.len) return error.UnexpectedEnd;
                if (p.s[p.pos] != ':') return error.ExpectedColon;
                p.pos += 1;
                p.skipWs();
            }
            _ = try p.value();
            p.skipWs();
            if (p.pos >= p.s.len) return error.UnexpectedEnd;
            if (p.s[p.pos] == end) {
                p.pos += 1;
                p.depth -= 1;
                return;
            }
            if (p.s[p.pos] != ',') return error.ExpectedCommaOrEnd;
            p.pos += 1;
            p.skipWs();
            if (p.pos < p.s.len and p.s[p.pos] == end) return error.TrailingComma;
        }
    }
};

/// Parses `text` as one JSON document.
pub fn parse(text: []const u8) ParseError!Value {
    var p = Parser{ .s = text };
    p.skipWs();
    const v = try p.value();
    p.skipWs();
    if (p.pos != text.len) return error.TrailingCharacters;
    return v;
}

/// Appends `text` (UTF-8) as a quoted, escaped JSON string.
pub fn writeString(out: *Buf, text: []const u8) void {
    const hex = "0123456789abcdef";
    out.reserve(text.len + 2);
    out.appendByte('"');
    var start: usize = 0;
    for (text, 0..) |c, i| {
        if (c >= 0x20 and c != '"' and c != '\\') continue;
        out.append(text[start..i]);
        start = i + 1;
        switch (c) {
            '"' => out.append("\\\""),
            '\\' => out.append("\\\\"),
            8 => out.append("\\b"),
            12 => out.append("\\f"),
            '\n' => out.append("\\n"),
            '\r' => out.append("\\r"),
            '\t' => out.append("\\t"),
            else => out.append(&[_]u8{ '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] }),
        }
    }
    out.append(text[start..]);
    out.appendByte('"');
}
