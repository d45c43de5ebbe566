// Tests of the JavaScript SDK on Node.js: `node --test sdk/js/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  BATCH_FORMAT,
  Record,
  ResultWriter,
  StageError,
  decodeBatch,
  decodeResult,
  encodeBatch,
} from "./core.js";
import { Harness, run } from "./testing.js";

const text = (b) => (b === null ? null : new TextDecoder().decode(b));

test("batches round-trip", () => {
  const records = [
    new Record('{"a":1}', { key: "k", headers: [["h", "v"], ["n", null]], timestamp: 5, offset: 7 }),
    new Record(null, { offset: 8 }),
  ];
  const { topic, partition, records: decoded } = decodeBatch(encodeBatch(records, "clicks", 3));
  assert.deepEqual([topic, partition], ["clicks", 3]);
  assert.deepEqual(
    decoded.map((r) => [r.offset, r.timestamp, text(r.key), text(r.value), r.headers.map(([n, v]) => [n, text(v)])]),
    [[7, 5, "k", '{"a":1}', [["h", "v"], ["n", null]]], [8, null, null, null, []]],
  );
  assert.equal(BATCH_FORMAT, 3);
});

test("a record whose length disagrees with its fields is refused", () => {
  const buf = encodeBatch([new Record("v", { key: "k", headers: [["h", "1"]] })]);
  const at = 4 + 4 + 4 + "test".length + 4; // format, count, topic, partition
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const length = view.getUint32(at, true);
  const longer = new Uint8Array(buf.length + 1);
  longer.set(buf);
  for (const wrong of [length - 1, length + 1]) {
    new DataView(longer.buffer).setUint32(at, wrong, true);
    assert.throws(() => decodeBatch(longer), /says it ends/);
  }
  assert.equal(text(decodeBatch(buf).records[0].value), "v");
});

test("untouched fields are sent as the same", () => {
  const [r] = decodeBatch(encodeBatch([new Record("v", { key: "k", timestamp: 5 })])).records;
  let w = new ResultWriter(1);
  w.ok([r], r);
  // format, count, tag 2: the input, unchanged
  assert.deepEqual(Array.from(w.finish().subarray(8)), [2]);
  r.timestamp = 6;
  w = new ResultWriter(1);
  w.ok([r], r);
  // format, count, tag, output count, same byte = key | value | headers
  assert.equal(w.finish()[8], 0);
  assert.equal(w.finish()[13], 0b111);
  r.value = "changed";
  w = new ResultWriter(1);
  w.ok([r], r);
  assert.equal(w.finish()[13], 0b101);
});

test("tag 2 reads back as the input", () => {
  const src = new Record("v", { key: "k", headers: [["h", "1"]], timestamp: 5, offset: 7 });
  const [out] = decodeResult(new Uint8Array([3, 0, 0, 0, 1, 0, 0, 0, 2]), [src]);
  assert.deepEqual(
    out.map((r) => [r.value, r.key, r.headers, r.timestamp, r.offset]),
    [["v", "k", [["h", "1"]], 5, 7]],
  );
  assert.throws(() => decodeResult(new Uint8Array([3, 0, 0, 0, 1, 0, 0, 0, 3]), [src]), /unknown result tag/);
});

test("maps, filters, flat-maps and refuses", () => {
  const stage = (r) => {
    const v = r.valueString();
    if (v === "drop") return null;
    if (v === "two") return [new Record("a"), new Record("b", { key: "k2" })];
    if (v === "bad") throw new StageError("bad-value", "no");
    if (v === "as is") return r;
    r.setHeader("seen", "1");
    return r;
  };
  const input = new Record("as is", { key: "k", headers: [["h", null]], timestamp: 5 });
  const out = run(stage, {}, ["keep", "drop", "two", "bad", input]);
  assert.equal(text(out[0][0].header("seen")), "1");
  assert.deepEqual(out[1], []);
  assert.deepEqual(out[2].map((r) => [text(r.value), text(r.key), r.offset]), [["a", null, 2], ["b", "k2", 2]]);
  assert.deepEqual([out[3].code, out[3].detail], ["bad-value", "no"]);
  assert.deepEqual(
    out[4].map((r) => [text(r.value), text(r.key), r.headers, r.timestamp, r.offset]),
    [["as is", "k", [["h", null]], 5, 4]],
  );
});

test("other exceptions escape", () => {
  assert.throws(() => run(() => { throw new RangeError("oops"); }, {}, ["x"]), RangeError);
});

test("configuration", () => {
  class Stage {
    constructor(config) {
      this.config = config;
    }
    process(r) {
      r.value = JSON.stringify(this.config);
      return r;
    }
  }
  assert.equal(text(run(Stage, "", ["x"])[0][0].value), "{}");
  assert.equal(text(run(Stage, { a: 1 }, ["x"])[0][0].value), '{"a":1}');
  for (const bad of ["[", "42", '{"a":1,"a":2}', '{"b":[{"c":1,"c":2}]}']) {
    assert.throws(() => new Harness(Stage, bad), (e) => e.code === "bad-config", bad);
  }
  assert.throws(() => new Harness((r) => r, { a: 1 }), (e) => e.code === "bad-config");
});
