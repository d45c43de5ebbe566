// JSON read and written exactly as Rust's serde_json does by default, so that this stage's output
// is byte-for-byte the Rust stage's.
//
// - Reading: strict UTF-8 (a BOM is an error) and strict JSON. An integer that fits u64 or i64
//   stays an integer (a number when it is exact, else a BigInt); any other number (a fraction, an
//   exponent, a larger integer) is an f64, held as an `F64`; one out of f64's range is an error;
//   `-0` is the float -0.0. A string that is not valid Unicode (a lone `\ud800`) is an error.
// - Writing: compact, object keys sorted by their UTF-8 bytes (serde_json's map is a B-tree),
//   non-ASCII as is, control characters as `\u00XX`, floats in their shortest round-trip digits
//   laid out as serde_json does (`1e+20`, `1.5e-7`, `100.0`, `-0.0`).

const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();
const U64_MAX = 2n ** 64n - 1n;
const I64_MIN = -(2n ** 63n);

/** A JSON number that serde_json holds as an f64. */
export class F64 {
  constructor(value) {
    this.value = value;
  }
}

function reviver(key, value, context) {
  if (!key.isWellFormed()) throw new SyntaxError("lone surrogate in a string");
  if (typeof value === "string") {
    if (!value.isWellFormed()) throw new SyntaxError("lone surrogate in a string");
    return value;
  }
  if (typeof value !== "number") return value;
  const src = context.source;
  if (!/[.eE]/.test(src) && src !== "-0") {
    if (Number.isSafeInteger(value)) return value;
    const n = BigInt(src);
    if (n >= I64_MIN && n <= U64_MAX) return n;
  }
  const f = Number(src);
  if (!Number.isFinite(f)) throw new SyntaxError(`number out of range: ${src}`);
  return new F64(f);
}

// serde_json refuses more than 127 nested arrays and objects.
const MAX_DEPTH = 127;

/** Parses JSON bytes. Throws on anything serde_json refuses. */
export function parse(bytes) {
  const text = strict.decode(bytes);
  const value = JSON.parse(text, reviver);
  // Only a text this long can nest too deep.
  if (text.length > 2 * MAX_DEPTH && depth(value) > MAX_DEPTH) {
    throw new SyntaxError("recursion limit exceeded");
  }
  return value;
}

function depth(value) {
  let deepest = 0;
  const stack = [[value, 1]];
  while (stack.length) {
    const [v, d] = stack.pop();
    if (v === null || typeof v !== "object" || v instanceof F64) continue;
    deepest = Math.max(deepest, d);
    for (const x of Array.isArray(v) ? v : Object.values(v)) stack.push([x, d + 1]);
  }
  return deepest;
}

/** Writes a parsed value as compact JSON bytes, as serde_json would. */
export function stringify(value) {
  const out = [];
  write(value, out);
  return encoder.encode(out.join(""));
}

function write(v, out) {
  switch (typeof v) {
    case "string":
      out.push(JSON.stringify(v));
      return;
    case "number":
      // Integers only: floats are `F64`s.
      out.push(String(v));
      return;
    case "bigint":
      out.push(v.toString());
      return;
    case "boolean":
      out.push(v ? "true" : "false");
      return;
  }
  if (v === null) {
    out.push("null");
  } else if (v instanceof F64) {
    out.push(ryu(v.value));
  } else if (Array.isArray(v)) {
    out.push("[");
    for (let i = 0; i < v.length; i++) {
      if (i) out.push(",");
      write(v[i], out);
    }
    out.push("]");
  } else {
    const keys = sortedKeys(v);
    out.push("{");
    for (let i = 0; i < keys.length; i++) {
      if (i) out.push(",");
      out.push(JSON.stringify(keys[i]), ":");
      write(v[keys[i]], out);
    }
    out.push("}");
  }
}

const SURROGATE = /[\uD800-\uDFFF]/;

/** Own keys in UTF-8 byte order (UTF-16 order differs only around surrogates). */
function sortedKeys(obj) {
  const keys = Object.keys(obj).sort();
  if (keys.some((k) => SURROGATE.test(k))) keys.sort(byCodePoint);
  return keys;
}

function byCodePoint(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d) return d;
  }
  return x.length - y.length;
}

/** A finite float as serde_json writes it (the `zmij` crate's `format_finite`, ryu's layout with a
 * signed exponent): fixed notation from 1e-5 to below 1e16, else `1e+16`, `1.5e-7`. */
export function ryu(f) {
  if (f === 0) return Object.is(f, -0) ? "-0.0" : "0.0";
  const sign = f < 0 ? "-" : "";
  // Shortest round-trip digits, as serde_json finds them: d.ddde±x
  const [mantissa, exp] = Math.abs(f).toExponential().split("e");
  let digits = mantissa.replace(".", "");
  let k = Number(exp) - (digits.length - 1);
  const stripped = digits.replace(/0+$/, "");
  k += digits.length - stripped.length;
  digits = stripped;
  const length = digits.length;
  const kk = length + k; // 10^(kk-1) <= |f| < 10^kk
  let s;
  if (k >= 0 && kk <= 16) s = digits + "0".repeat(k) + ".0";
  else if (kk > 0 && kk <= 16) s = `${digits.slice(0, kk)}.${digits.slice(kk)}`;
  else if (kk > -5 && kk <= 0) s = `0.${"0".repeat(-kk)}${digits}`;
  else {
    const exp = kk - 1 > 0 ? `e+${kk - 1}` : `e${kk - 1}`;
    s = length === 1 ? digits + exp : `${digits[0]}.${digits.slice(1)}${exp}`;
  }
  return sign + s;
}
