//! {{name}}: upper-cases (ASCII) each record's value and appends the configured `suffix`.
//!
//! Config: `{ suffix = "!" }` (the default). Errors: `empty-value` (a null or empty value).
const std = @import("std");
const weir = @import("weir");

comptime {
    weir.exportEnricher(Stage);
}

const Stage = struct {
    suffix: weir.Buf = .{},
    value: weir.Buf = .{},

    /// Called once per instance with the `config` table of the stage's entry in pipeline.toml.
    pub fn init(config: []const u8, diag: *weir.Diagnostic) weir.Error!Stage {
        var s = Stage{};
        s.suffix.append("!");
        const text = std.mem.trim(u8, config, " \t\n\r");
        if (text.len == 0 or std.mem.eql(u8, text, "null")) return s;
        const root = weir.json.parse(text) catch |e|
            return diag.fail("bad-config", "invalid stage config: {s}", .{@errorName(e)});
        if (root.kind != .object) return diag.fail("bad-config", "invalid stage config: not an object", .{});
        var it = root.members();
        while (it.next()) |m| {
            if (!m.name.stringEql("suffix") or m.value.kind != .string)
                return diag.fail("bad-config", "invalid stage config: expected `suffix`, a string", .{});
            s.suffix.clear();
            m.value.appendString(&s.suffix);
        }
        return s;
    }

    /// Called for every input record, in order.
    pub fn process(self: *Stage, in: *const weir.Record, out: *weir.Outputs) weir.Error!void {
        const value = in.value orelse "";
        if (value.len == 0) return out.fail("empty-value", "there is nothing to shout", .{});
        self.value.clear();
        for (value) |b| self.value.appendByte(std.ascii.toUpper(b));
        self.value.append(self.suffix.items());
        out.emitValue(self.value.items());
    }
};
