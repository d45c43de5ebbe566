// Tests of the stage on Node.js: `node --test`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Record } from "./weir/core.js";
import { Harness, run } from "./weir/testing.js";
import { Stage } from "./shout.js";

const text = (bytes) => new TextDecoder().decode(bytes);

test("shouts", () => {
  const out = run(Stage, { suffix: "?" }, [new Record("hi", { key: "k" })]);
  assert.deepEqual([text(out[0][0].value), text(out[0][0].key)], ["HI?", "k"]);
});

test("refuses empty values", () => {
  const out = run(Stage, {}, [new Record(""), new Record(null)]);
  assert.deepEqual(out.map((e) => e.code), ["empty-value", "empty-value"]);
});

test("refuses unknown config", () => {
  assert.throws(() => new Harness(Stage, { sufix: "?" }), (e) => e.code === "bad-config");
});
