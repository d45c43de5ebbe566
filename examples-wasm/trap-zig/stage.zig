//! Example Weir stage in Zig: trap, the Zig twin of examples-wasm/misbehaving/trap.
//!
//! Passes every record through unchanged, and traps (`weir.trap`) on a value that contains the
//! marker `trap_on`: the host must dead-letter that record alone and carry on with a fresh
//! instance. Config: `{ trap_on = "poison" }` (the default); an empty marker is refused.
const std = @import("std");
const weir = @import("weir");

comptime {
    weir.exportEnricher(Stage);
}

const Stage = struct {
    marker: weir.Buf = .{},

    pub fn init(config: []const u8, diag: *weir.Diagnostic) weir.Error!Stage {
        var s = Stage{};
        s.marker.append("poison");
        const text = std.mem.trim(u8, config, " \t\n\r");
        if (text.len == 0 or std.mem.eql(u8, text, "null")) return s;
        const root = weir.json.parse(text) catch |e|
            return diag.fail("bad-config", "invalid stage config: {s}", .{@errorName(e)});
        if (root.kind != .object) return diag.fail("bad-config", "invalid stage config: not an object", .{});
        var it = root.members();
        while (it.next()) |m| {
            if (!m.name.stringEql("trap_on") or m.value.kind != .string)
                return diag.fail("bad-config", "invalid stage config: expected `trap_on`, a string", .{});
            s.marker.clear();
            m.value.appendString(&s.marker);
        }
        if (s.marker.len == 0) return diag.fail("bad-config", "`trap_on` must not be empty", .{});
        return s;
    }

    pub fn process(self: *Stage, in: *const weir.Record, out: *weir.Outputs) weir.Error!void {
        if (std.mem.indexOf(u8, in.value orelse "", self.marker.items()) != null) weir.trap("the record is poisoned");
        out.emitInput();
    }
};
