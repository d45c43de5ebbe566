// Native tests of the stage on Node.js: `npm test` here, or `node --test` (Node.js 21 or newer;
// Node.js 20 needs `--harmony-json-parse-with-source`, the JSON.parse source access the stage uses).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Record, StageError } from "../../sdk/js/core.js";
import { Harness, run } from "../../sdk/js/testing.js";
import { ryu } from "./canonical.js";
import { JsonEnrich, enrichValue } from "./enrich.js";
import { parseUrl } from "./url.js";

const CLICK =
  '{"user":"u17","url":"https://shop.example/products/42?ref=mail","ts":1700000000000,' +
  '"ip":"81.2.69.160","ua":"Mozilla/5.0"}';
const text = (b) => new TextDecoder().decode(b);
const enrich = (v) => JSON.parse(text(enrichValue(new TextEncoder().encode(v), "url")));
const code = (v) => {
  try {
    enrichValue(new TextEncoder().encode(v), "url");
  } catch (e) {
    assert.ok(e instanceof StageError, String(e));
    return e.code;
  }
  assert.fail(`no error for ${v}`);
};

test("derives fields from a click", () => {
  const v = enrich(CLICK);
  assert.deepEqual(
    [v.domain, v.path, v.section, v.ref, v.hour, v.user],
    ["shop.example", "/products/42", "products", "mail", 22, "u17"],
  );
  assert.equal(v.utm_source, undefined);
});

test("writes what the Rust stage writes", () => {
  assert.equal(
    text(enrichValue(new TextEncoder().encode(CLICK), "url")),
    '{"domain":"shop.example","hour":22,"ip":"81.2.69.160","path":"/products/42",' +
      '"ref":"mail","section":"products","ts":1700000000000,"ua":"Mozilla/5.0",' +
      '"url":"https://shop.example/products/42?ref=mail","user":"u17"}',
  );
  const out = text(
    enrichValue(
      new TextEncoder().encode('{"url":"http://h/","x":[1.0,-0,1e20,0.1,1e-7,18446744073709551616,18446744073709551615]}'),
      "url",
    ),
  );
  assert.ok(out.includes('"x":[1.0,-0.0,1e+20,0.1,1e-7,1.8446744073709552e+19,18446744073709551615]'), out);
  assert.deepEqual([1e-5, 1e-6, 1e16, 1e15, 123.456].map(ryu), ["0.00001", "1e-6", "1e+16", "1000000000000000.0", "123.456"]);
});

test("copies campaign parameters", () => {
  const v = enrich('{"url":"http://A.Example:8080/?utm_source=news%20letter&utm_medium=email&x=1#top"}');
  assert.deepEqual([v.domain, v.path, v.section, v.utm_source, v.utm_medium], ["a.example", "/", "", "news letter", "email"]);
  assert.equal(v.x ?? v.hour ?? v.ref, undefined);
});

test("refuses bad inputs", () => {
  for (const [v, c] of [
    ["not json", "bad-json"],
    ["[1,2]", "bad-json"],
    ["", "bad-json"],
    ["NaN", "bad-json"],
    ['{"url":1e400}', "bad-json"],
    ['{"url":"\\ud800"}', "bad-json"],
    ['{"user":"u1"}', "missing-field"],
    ['{"toString":"u1"}', "missing-field"],
    ['{"url":42}', "missing-field"],
    ['{"url":"/products/42"}', "bad-url"],
    ['{"url":"https://"}', "bad-url"],
  ]) {
    assert.equal(code(v), c, v);
  }
});

test("runs as a stage with config", () => {
  const click = new Record('{"link":"https://shop.example/cart","ts":0}', { key: "u1", headers: [["trace", "t"]] });
  const out = run(JsonEnrich, { field: "link" }, [click, new Record("{}")]);
  const enriched = out[0][0];
  assert.equal(text(enriched.key), "u1");
  assert.equal(text(enriched.header("trace")), "t");
  const v = JSON.parse(text(enriched.value));
  assert.deepEqual([v.section, v.hour], ["cart", 0]);
  assert.equal(out[1].code, "missing-field");
});

test("defaults and refuses config", () => {
  new Harness(JsonEnrich, "");
  new Harness(JsonEnrich, "{}");
  assert.throws(() => new Harness(JsonEnrich, { feild: "url" }), (e) => e.code === "bad-config");
});

test("parses URLs as the Rust stage does", () => {
  const u = parseUrl("https://user:pw@Shop.Example:8443/a/b?x=1&ref=mail#frag");
  assert.deepEqual(
    [u.scheme, u.host, u.port, u.path, u.query, u.fragment, u.section()],
    ["https", "Shop.Example", 8443, "/a/b", "x=1&ref=mail", "frag", "a"],
  );
  for (const bad of ["", "example.com/path", "/relative", "http://", "http:///path", "1http://h",
    "http://h:99999", "http://h:8o", "http://ho st/", "http://h/\n", "http://[::1/", "http://[::1]x/", "http://h<x>/"]) {
    assert.equal(parseUrl(bad), null, bad);
  }
  assert.deepEqual([...parseUrl("http://h/?a=1&&b&c=x%20y+z&d=%zz&e=%e2%82%ac&f=%4").queryPairs()], [
    ["a", "1"], ["b", ""], ["c", "x y z"], ["d", "%zz"], ["e", "€"], ["f", "%4"],
  ]);
});
