// Example Weir stage in JavaScript: json-enrich, the same stage as `examples-wasm/json-enrich`.
//
// Input: a click as a JSON object, such as
// `{"user":"u17","url":"https://shop.example/products/42?ref=mail","ts":1700000000000}`.
// Output: the same object plus fields derived from its URL and timestamp: `domain` (host, ASCII
// lower-cased, without port), `path` (`/` when empty), `section` (the path's first segment), the
// `ref` and `utm_*` query parameters (percent-decoded), and `hour` (the UTC hour of `ts` in
// milliseconds, when `ts` is a number). Derived fields overwrite input fields of the same name.
// Key and headers pass through.
//
// The output is written exactly as the Rust stage writes it (`canonical.js`): keys sorted,
// compact, numbers as serde_json prints them.
//
// Config: `{ field = "url" }`: the field that holds the URL (default `url`).
//
// Errors: `bad-json` (value not a JSON object), `missing-field` (no string at `field`),
// `bad-url` (not an absolute `scheme://host/...` URL).
//
// This module is the stage's logic; `stage.js` exports it as the component.

import { StageError } from "../../sdk/js/core.js";
import { F64, parse, stringify } from "./canonical.js";
import { parseUrl, rustDebug } from "./url.js";

const HOUR_MS = 3_600_000n;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const EMPTY = new Uint8Array(0);

export class JsonEnrich {
  constructor(config) {
    const unknown = Object.keys(config).filter((k) => k !== "field");
    if (unknown.length) {
      throw new StageError(
        "bad-config",
        `invalid stage config: unknown field \`${unknown[0]}\`, expected \`field\``,
      );
    }
    const field = config.field ?? "url";
    if (typeof field !== "string") {
      throw new StageError("bad-config", "invalid stage config: `field` must be a string");
    }
    this.field = field;
  }

  process(record) {
    record.value = enrichValue(record.value ?? EMPTY, this.field);
    return record;
  }
}

/** The stage's logic on one value (bytes in, bytes out). */
export function enrichValue(value, field) {
  let click;
  try {
    click = parse(value);
  } catch (e) {
    throw new StageError("bad-json", `the value is not JSON: ${e.message}`);
  }
  if (click === null || typeof click !== "object" || Array.isArray(click) || click instanceof F64) {
    throw new StageError("bad-json", "the value is not a JSON object");
  }
  for (const [name, v] of derive(click, field)) click[name] = v;
  return stringify(click);
}

/** The fields derived from a click, in order (a later field of the same name wins). */
function derive(click, field) {
  if (!Object.hasOwn(click, field)) throw new StageError("missing-field", `no \`${field}\` field`);
  const text = click[field];
  if (typeof text !== "string") {
    throw new StageError("missing-field", `\`${field}\` is not a string`);
  }
  const url = parseUrl(text);
  if (url === null) throw new StageError("bad-url", `cannot parse ${rustDebug(text)}`);
  const derived = [
    ["domain", url.host.replace(/[A-Z]+/g, (s) => s.toLowerCase())],
    ["path", url.path],
    ["section", url.section()],
  ];
  for (const [name, v] of url.queryPairs()) {
    if (name === "ref" || name.startsWith("utm_")) derived.push([name, v]);
  }
  const hour = Object.hasOwn(click, "ts") ? utcHour(click.ts) : null;
  if (hour !== null) derived.push(["hour", hour]);
  return derived;
}

/** The UTC hour of a millisecond timestamp, with serde_json's number semantics: an integer
 * outside i64 or a float goes through `as i64` (truncating, saturating). */
function utcHour(ts) {
  let ms;
  if (typeof ts === "number") ms = BigInt(ts);
  else if (typeof ts === "bigint") ms = ts > I64_MAX ? I64_MAX : ts;
  else if (ts instanceof F64) {
    const f = ts.value;
    if (f >= 2 ** 63) ms = I64_MAX;
    else if (f < -(2 ** 63)) ms = I64_MIN;
    else ms = BigInt(Math.trunc(f));
  } else return null;
  let q = ms / HOUR_MS;
  if (ms % HOUR_MS < 0n) q -= 1n;
  let h = q % 24n;
  if (h < 0n) h += 24n;
  return Number(h);
}
