//! weir: write Weir stages in Zig.
//!
//! A stage is a WebAssembly component of the contract `weir:stage@0.1.0` (sdk/wit/stage.wit).
//! The component glue is wit-bindgen's C output for the world, generated at build time and
//! compiled by `zig cc`; this module implements the C functions that glue calls, the flat batch
//! encoding (sdk/wit/BATCH.md, format 3) and a strict JSON reader. A stage is a struct:
//!
//!     const weir = @import("weir");
//!     const Stage = struct {
//!         pub fn init(config: []const u8, diag: *weir.Diagnostic) weir.Error!Stage { ... }
//!         pub fn process(self: *Stage, in: *const weir.Record, out: *weir.Outputs) weir.Error!void { ... }
//!     };
//!     comptime { weir.exportEnricher(Stage); }
//!
//! See sdk/zig/README.md.
const std = @import("std");

pub const contract = "weir:stage@0.1.0";
pub const batch_format: u32 = 3;

/// A stage refused its configuration or a record; the code and message are in the Diagnostic.
pub const Error = error{Refused};

/// Why a stage refuses its configuration or a record: a short code (`bad-json`) and a message.
pub const Diagnostic = struct {
    code_buf: [64]u8 = undefined,
    code_len: usize = 0,
    message_buf: [448]u8 = undefined,
    message_len: usize = 0,

    /// Records the code and a formatted message and returns `error.Refused`, so that
    /// `return diag.fail("bad-json", "not JSON: {s}", .{why});` reads well.
    pub fn fail(self: *Diagnostic, error_code: []const u8, comptime fmt: []const u8, args: anytype) Error {
        const n = @min(error_code.len, self.code_buf.len);
        @memcpy(self.code_buf[0..n], error_code[0..n]);
        self.code_len = n;
        const msg = std.fmt.bufPrint(&self.message_buf, fmt, args) catch self.message_buf[0..];
        self.message_len = msg.len;
        return error.Refused;
    }

    pub fn code(self: *const Diagnostic) []const u8 {
        return self.code_buf[0..self.code_len];
    }

    pub fn message(self: *const Diagnostic) []const u8 {
        return self.message_buf[0..self.message_len];
    }
};

pub const Header = struct {
    name: []const u8,
    /// null: a null header value.
    value: ?[]const u8,
};

/// One record. null fields are absent (a null Kafka key or value, no timestamp). Inputs borrow
/// from the batch the host sent and live until `process` returns.
pub const Record = struct {
    offset: i64 = 0,
    /// ms since the epoch; null: an output keeps its input's.
    timestamp: ?i64 = null,
    key: ?[]const u8 = null,
    value: ?[]const u8 = null,
    headers: []const Header = &.{},

    /// The value of the first header called `name`.
    pub fn header(self: *const Record, name: []const u8) ?[]const u8 {
        for (self.headers) |h| {
            if (std.mem.eql(u8, h.name, name)) return h.value;
        }
        return null;
    }
};

// ---------------------------------------------------------------------------------------------
// A growable byte buffer on libc's allocator (the generated glue frees with libc's free).

pub const Buf = struct {
    ptr: ?[*]u8 = null,
    len: usize = 0,
    cap: usize = 0,

    pub fn items(self: *const Buf) []u8 {
        return if (self.ptr) |p| p[0..self.len] else &.{};
    }

    pub fn reserve(self: *Buf, extra: usize) void {
        if (self.cap - self.len >= extra) return;
        var cap: usize = if (self.cap == 0) 64 else self.cap;
        while (cap - self.len < extra) cap *= 2;
        const p = std.c.realloc(self.ptr, cap) orelse trap("out of memory");
        self.ptr = @ptrCast(p);
        self.cap = cap;
    }

    pub fn append(self: *Buf, bytes: []const u8) void {
        if (bytes.len == 0) return;
        self.reserve(bytes.len);
        @memcpy(self.ptr.?[self.len .. self.len + bytes.len], bytes);
        self.len += bytes.len;
    }

    pub fn appendByte(self: *Buf, b: u8) void {
        self.reserve(1);
        self.ptr.?[self.len] = b;
        self.len += 1;
    }

    pub fn appendInt(self: *Buf, comptime T: type, v: T) void {
        var b: [@sizeOf(T)]u8 = undefined;
        std.mem.writeInt(T, &b, v, .little);
        self.append(&b);
    }

    pub fn clear(self: *Buf) void {
        self.len = 0;
    }

    pub fn deinit(self: *Buf) void {
        if (self.ptr) |p| std.c.free(p);
        self.* = .{};
    }
};

// ---------------------------------------------------------------------------------------------
// Decoding input batches.

const absent: u32 = 0xFFFF_FFFF;

const Reader = struct {
    s: []const u8,
    pos: usize = 0,

    fn need(r: *Reader, n: usize) void {
        if (r.s.len - r.pos < n) trap("the host sent a truncated batch");
    }
    fn int(r: *Reader, comptime T: type) T {
        r.need(@sizeOf(T));
        const v = std.mem.readInt(T, r.s[r.pos..][0..@sizeOf(T)], .little);
        r.pos += @sizeOf(T);
        return v;
    }
    fn bytes(r: *Reader) ?[]const u8 {
        const n = r.int(u32);
        if (n == absent) return null;
        r.need(n);
        const v = r.s[r.pos .. r.pos + n];
        r.pos += n;
        return v;
    }
    /// The fields of the record that starts here: a reader that ends where the record's length
    /// says it does; `r` moves past the record.
    fn record(r: *Reader) Reader {
        const n = r.int(u32);
        r.need(n);
        const fields = Reader{ .s = r.s[0 .. r.pos + n], .pos = r.pos };
        r.pos += n;
        return fields;
    }
};

var records: []Record = &.{};
var headers: []Header = &.{};

fn grow(comptime T: type, slice: *[]T, n: usize) void {
    if (slice.len >= n) return;
    if (slice.len > 0) std.c.free(slice.ptr);
    const p = std.c.malloc(@max(n, 1) * @sizeOf(T)) orelse trap("out of memory");
    slice.* = @as([*]T, @ptrCast(@alignCast(p)))[0..n];
}

/// Decodes an input batch into `records` (borrowing from `data`); returns their number.
fn decodeBatch(data: []const u8) usize {
    var r = Reader{ .s = data };
    if (r.int(u32) != batch_format) trap("the host sent a batch of another format");
    const count = r.int(u32);
    _ = r.bytes(); // topic
    _ = r.int(i32); // partition
    const start = r.pos;
    // Headers: counted first so that one array holds them all (a header takes 8 bytes at least).
    var header_total: usize = 0;
    for (0..count) |_| {
        var f = r.record();
        _ = f.int(i64);
        _ = f.int(i64);
        _ = f.bytes();
        _ = f.bytes();
        const h = f.int(u32);
        if (h > (f.s.len - f.pos) / 8) trap("the host sent a malformed batch");
        header_total += h;
    }
    grow(Record, &records, count);
    grow(Header, &headers, header_total);
    r.pos = start;
    var hi: usize = 0;
    for (records[0..count]) |*rec| {
        var f = r.record();
        rec.offset = f.int(i64);
        const ts = f.int(i64);
        rec.timestamp = if (ts == std.math.minInt(i64)) null else ts;
        rec.key = f.bytes();
        rec.value = f.bytes();
        const h = f.int(u32);
        for (headers[hi .. hi + h]) |*hd| {
            hd.name = f.bytes() orelse "";
            hd.value = f.bytes();
        }
        if (f.pos != f.s.len) trap("the host sent a malformed batch");
        rec.headers = headers[hi .. hi + h];
        hi += h;
    }
    return count;
}

// ---------------------------------------------------------------------------------------------
// Writing batch results.

/// The outputs of one input record.
pub const Outputs = struct {
    buf: *Buf,
    input: *const Record,
    allow_same: bool,
    start: usize,
    count: u32 = 0,
    /// The last output is the input, unchanged (same 7, no timestamp).
    input_only: bool = false,
    diag: Diagnostic = .{},

    /// Emits `rec`. Fields that are the input's own slices (not equal copies) are sent as "the
    /// same as the input" without a copy.
    pub fn emit(self: *Outputs, rec: Record) void {
        const in = self.input;
        var same: u8 = 0;
        if (self.allow_same) {
            if (sameBytes(rec.key, in.key)) same |= 1;
            if (sameBytes(rec.value, in.value)) same |= 2;
            if (rec.headers.ptr == in.headers.ptr and rec.headers.len == in.headers.len) same |= 4;
        }
        const b = self.buf;
        b.appendByte(same);
        const ts: ?i64 = if (self.allow_same and rec.timestamp == in.timestamp) null else rec.timestamp;
        self.input_only = same == 7 and ts == null;
        b.appendInt(i64, ts orelse std.math.minInt(i64));
        if (same & 1 == 0) putBytes(b, rec.key);
        if (same & 2 == 0) putBytes(b, rec.value);
        if (same & 4 == 0) {
            b.appendInt(u32, @intCast(rec.headers.len));
            for (rec.headers) |h| {
                putBytes(b, h.name);
                putBytes(b, h.value);
            }
        }
        self.count += 1;
    }

    /// Emits the input with a new value (key, headers and timestamp unchanged).
    pub fn emitValue(self: *Outputs, value: []const u8) void {
        var rec = self.input.*;
        rec.value = value;
        self.emit(rec);
    }

    /// Emits the input unchanged (as the only output of its record: one byte of the result).
    pub fn emitInput(self: *Outputs) void {
        self.emit(self.input.*);
    }

    /// Refuses the record: it goes to the dead-letter topic with this code and message.
    pub fn fail(self: *Outputs, error_code: []const u8, comptime fmt: []const u8, args: anytype) Error {
        return self.diag.fail(error_code, fmt, args);
    }
};

fn sameBytes(a: ?[]const u8, b: ?[]const u8) bool {
    if (a == null or b == null) return a == null and b == null;
    return a.?.ptr == b.?.ptr and a.?.len == b.?.len;
}

fn putBytes(b: *Buf, v: ?[]const u8) void {
    if (v) |bytes| {
        b.appendInt(u32, @intCast(bytes.len));
        b.append(bytes);
    } else b.appendInt(u32, absent);
}

fn entryBegin(buf: *Buf, in: *const Record, allow_same: bool) Outputs {
    const o = Outputs{ .buf = buf, .input = in, .allow_same = allow_same, .start = buf.len };
    buf.appendByte(0);
    buf.appendInt(u32, 0);
    return o;
}

fn entryOk(o: *Outputs) void {
    if (o.count == 1 and o.input_only) {
        // Tag 2: the one output is the input, unchanged.
        o.buf.len = o.start;
        o.buf.appendByte(2);
        return;
    }
    std.mem.writeInt(u32, o.buf.items()[o.start + 1 ..][0..4], o.count, .little);
}

fn entryError(o: *Outputs) void {
    o.buf.len = o.start;
    o.buf.appendByte(1);
    putBytes(o.buf, o.diag.code());
    putBytes(o.buf, o.diag.message());
}

// ---------------------------------------------------------------------------------------------
// The C ABI of wit-bindgen's glue (enricher.h): these layouts match its structs on wasm32.

const CStr = extern struct { ptr: ?[*]u8, len: usize };
const CStageError = extern struct { code: CStr, message: CStr };
const CPair = extern struct { f0: CStr, f1: CStr };
const CPairs = extern struct { ptr: ?[*]const CPair, len: usize };

extern fn weir_stage_host_log(level: u8, message: *const CStr, fields: *const CPairs) void;
extern fn weir_stage_host_counter_add(name: *const CStr, delta: u64) void;
extern fn weir_stage_host_histogram_record(name: *const CStr, value: f64) void;

fn borrow(s: []const u8) CStr {
    return .{ .ptr = @constCast(s.ptr), .len = s.len };
}

fn dup(s: []const u8) CStr {
    const p: [*]u8 = @ptrCast(std.c.malloc(@max(s.len, 1)) orelse trap("out of memory"));
    @memcpy(p[0..s.len], s);
    return .{ .ptr = p, .len = s.len };
}

fn view(s: *const CStr) []const u8 {
    return if (s.ptr) |p| p[0..s.len] else "";
}

fn toStageError(d: *const Diagnostic, out: *CStageError) void {
    out.code = dup(d.code());
    out.message = dup(d.message());
}

/// Exports `Stage` as this module's enrich stage (call in a `comptime` block of the root file).
/// `Stage.init(config, diag)` is called once per instance with the stage's config as JSON text
/// ("" when none); `Stage.process(self, in, out)` once per input record, in order: emit zero or
/// more outputs and return, or return `out.fail(...)` to dead-letter the record.
pub fn exportEnricher(comptime Stage: type) void {
    const Glue = struct {
        var stage: ?Stage = null;
        var result: Buf = .{};

        fn batchFormat() callconv(.c) u32 {
            return batch_format;
        }

        fn init(config: *CStr, err: *CStageError) callconv(.c) bool {
            defer if (config.len > 0) std.c.free(config.ptr);
            var diag = Diagnostic{};
            stage = Stage.init(view(config), &diag) catch {
                toStageError(&diag, err);
                return false;
            };
            return true;
        }

        fn process(input: *CStr, ret: *CStr) callconv(.c) void {
            const s = if (stage) |*s| s else trap("process called before init");
            const n = decodeBatch(view(input));
            result.clear();
            result.appendInt(u32, batch_format);
            result.appendInt(u32, @intCast(n));
            for (records[0..n]) |*rec| {
                var out = entryBegin(&result, rec, true);
                if (s.process(rec, &out)) |_| entryOk(&out) else |_| entryError(&out);
            }
            if (input.len > 0) std.c.free(input.ptr);
            ret.* = .{ .ptr = result.ptr, .len = result.len };
        }

        /// The result buffer is reused by the next call instead of being freed.
        fn postProcess(_: [*]u8) callconv(.c) void {}
    };
    @export(&Glue.batchFormat, .{ .name = "exports_weir_stage_enrich_batch_format" });
    @export(&Glue.init, .{ .name = "exports_weir_stage_enrich_init" });
    @export(&Glue.process, .{ .name = "exports_weir_stage_enrich_process" });
    @export(&Glue.postProcess, .{ .name = "__wasm_export_exports_weir_stage_enrich_process_post_return" });
}

// ---------------------------------------------------------------------------------------------
// Logging and metrics through the host.

pub const Level = enum(u8) { trace, debug, info, warn, err };

/// Writes a log line; `fields` are name/value pairs. It lands in the runtime's structured logs
/// with the stage name, trace context, partition and offset.
pub fn log(level: Level, message: []const u8, fields: []const [2][]const u8) void {
    var pairs: [16]CPair = undefined;
    const n = @min(fields.len, pairs.len);
    for (fields[0..n], pairs[0..n]) |f, *p| p.* = .{ .f0 = borrow(f[0]), .f1 = borrow(f[1]) };
    const msg = borrow(message);
    const list = CPairs{ .ptr = &pairs, .len = n };
    weir_stage_host_log(@intFromEnum(level), &msg, &list);
}

/// Adds `delta` to the stage's counter `name` (the host prefixes and labels it).
pub fn counterAdd(name: []const u8, delta: u64) void {
    const n = borrow(name);
    weir_stage_host_counter_add(&n, delta);
}

/// Records `value` in the stage's histogram `name`.
pub fn histogramRecord(name: []const u8, value: f64) void {
    const n = borrow(name);
    weir_stage_host_histogram_record(&n, value);
}

/// Logs `message` at error level with `panic = "true"` and traps the instance: the host
/// discards it and dead-letters the record being processed.
pub fn trap(message: []const u8) noreturn {
    log(.err, message, &.{.{ "panic", "true" }});
    @trap();
}

pub const json = @import("json.zig");
