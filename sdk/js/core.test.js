// Tests of the JavaScript SDK on Node.js: `node --test sdk/js/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { BATCH_FORMAT, Record, ResultWriter, StageError, decodeBatch, encodeBatch } from "./core.js";
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
  assert.equal(BATCH_FORMAT, 2);
});

test("untouched fields are sent as the same", () => {
  const [r] = decodeBatch(encodeBatch([new Record("v", { key: "k" })])).records;
  let w = new ResultWriter(1);
  w.ok([r], r);
  assert.equal(w.finish()[13], 0b111);
  r.value = "changed";
  w = new ResultWriter(1);
  w.ok([r], r);
  assert.equal(w.finish()[13], 0b101);
});

test("maps, filters, flat-maps and refuses", () => {
  const stage = (r) => {
    const v = r.valueString();
    if (v === "drop") return null;
    if (v === "two") return [new Record("a"), new Record("b", { key: "k2" })];
    if (v === "bad") throw new StageError("bad-value", "no");
    r.setHeader("seen", "1");
    return r;
  };
  const out = run(stage, {}, ["keep", "drop", "two", "bad"]);
  assert.equal(text(out[0][0].header("seen")), "1");
  assert.deepEqual(out[1], []);
  assert.deepEqual(out[2].map((r) => [text(r.value), text(r.key), r.offset]), [["a", null, 2], ["b", "k2", 2]]);
  assert.deepEqual([out[3].code, out[3].detail], ["bad-value", "no"]);
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
