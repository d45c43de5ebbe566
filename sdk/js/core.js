// The JavaScript SDK for Weir stages.
//
// A Weir stage is a WebAssembly component that the Weir runtime runs between a Kafka source and a
// Kafka sink. An enrich stage sees each record once, in offset order, and turns it into zero or
// more records. With this SDK it is one plain function (or a class, for configuration and state):
//
//     import { enricher } from "../sdk/js/weir.js";
//
//     export const enrich = enricher((record) => {
//       record.value = record.valueString().toUpperCase();
//       return record;
//     });
//
// `process` returns a `Record` (map), `null`/`undefined` (filter) or an array of records
// (flat-map), or throws a `StageError` to send the record to the dead-letter topic. Build with
// componentize-js (see README.md). The SDK implements the contract `weir:stage@0.1.0`, world
// `enricher`, and batch encoding format 3 (`sdk/wit/BATCH.md`).
//
// This module is the SDK without the host bindings, so that it also runs on Node.js (tests):
// `weir.js` is the same plus the `weir:stage/host` imports, for the component's entry module.

export const CONTRACT = "weir:stage@0.1.0";
export const BATCH_FORMAT = 3;

const ABSENT = 0xffffffff;
const SAME_KEY = 1;
const SAME_VALUE = 2;
const SAME_HEADERS = 4;

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Why a stage refused a record or (from a constructor) its configuration. Thrown from `process`,
 * the record goes to the dead-letter topic with `code` and `message` in its headers. */
export class StageError extends Error {
  constructor(code, message = "") {
    super(`${code}: ${message}`);
    this.name = "StageError";
    this.code = String(code);
    this.detail = String(message);
    // componentize-js turns a thrown error's `payload` into the `err` of a `result`.
    this.payload = { code: this.code, message: this.detail };
  }
}

/** A Kafka record as a stage sees it. Change it in place and return it, or make new ones.
 *
 * - `value`, `key`: `Uint8Array`, or `null` for a null Kafka value or key. Assigning a string is
 *   fine: it is written as UTF-8.
 * - `headers`: an array of `[name, value]` pairs in order; names are strings, values
 *   `Uint8Array`, string or `null`. Kafka allows repeated names.
 * - `timestamp`: milliseconds since the Unix epoch (a number), or `null`. An output without one
 *   keeps its input's timestamp.
 * - `offset`: the source offset of the record this one derives from (a number).
 */
export class Record {
  constructor(value = null, { key = null, headers = [], timestamp = null, offset = null } = {}) {
    this.value = value;
    this.key = key;
    this.headers = headers.slice();
    this.timestamp = timestamp;
    this.offset = offset;
    this._src = null;
  }

  /** The value as text. Throws `missing-value` (null value) or `bad-utf8`. */
  valueString() {
    if (this.value === null || this.value === undefined) {
      throw new StageError("missing-value", "the record has a null value");
    }
    if (typeof this.value === "string") return this.value;
    try {
      return utf8Strict.decode(this.value);
    } catch (e) {
      throw new StageError("bad-utf8", `value is not UTF-8: ${e.message}`);
    }
  }

  /** The value parsed as JSON. Throws `missing-value`, `bad-utf8` or `bad-json`. */
  valueJson() {
    const text = this.valueString();
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new StageError("bad-json", `the value is not JSON: ${e.message}`);
    }
  }

  /** Sets the value to `obj` written as compact JSON. */
  setValueJson(obj) {
    this.value = JSON.stringify(obj);
  }

  /** The value of the first header called `name`; `null` if there is none (or it is null). */
  header(name) {
    for (const [n, v] of this.headers) if (n === name) return v;
    return null;
  }

  /** Sets header `name`: replaces the first of that name and drops the others, or appends. */
  setHeader(name, value) {
    const out = [];
    let placed = false;
    for (const [n, v] of this.headers) {
      if (n !== name) out.push([n, v]);
      else if (!placed) {
        out.push([name, value]);
        placed = true;
      }
    }
    if (!placed) out.push([name, value]);
    this.headers = out;
  }

  /** Removes every header called `name`. */
  removeHeader(name) {
    this.headers = this.headers.filter(([n]) => n !== name);
  }
}

// ---- The batch encoding (sdk/wit/BATCH.md, format 3) ----

/** Reads an input batch: `{ topic, partition, records }`. Keys, values and header values are
 * views of `buf`, not copies. */
export function decodeBatch(buf) {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  const u32 = () => {
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const bytes = () => {
    const n = u32();
    if (n === ABSENT) return null;
    if (pos + n > buf.byteLength) throw new Error(`batch truncated at byte ${pos}`);
    const b = buf.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const string = () => {
    const n = u32();
    if (pos + n > buf.byteLength) throw new Error(`batch truncated at byte ${pos}`);
    const s = utf8Strict.decode(buf.subarray(pos, pos + n));
    pos += n;
    return s;
  };
  const format = u32();
  if (format !== BATCH_FORMAT) {
    throw new Error(`batch format ${format} is not supported (this SDK speaks ${BATCH_FORMAT})`);
  }
  const count = u32();
  const topic = string();
  const partition = view.getInt32(pos, true);
  pos += 4;
  const records = new Array(count);
  for (let i = 0; i < count; i++) {
    const end = pos + 4 + view.getUint32(pos, true);
    const offset = Number(view.getBigInt64(pos + 4, true));
    const ts = view.getBigInt64(pos + 12, true);
    pos += 20;
    const key = bytes();
    const value = bytes();
    const h = u32();
    const headers = new Array(h);
    for (let j = 0; j < h; j++) headers[j] = [string(), bytes()];
    if (pos !== end) throw new Error(`the record ending at byte ${pos} says it ends at byte ${end}`);
    const timestamp = ts === -(2n ** 63n) ? null : Number(ts);
    const r = new Record(value, { key, timestamp, offset });
    r.headers = headers;
    r._src = { timestamp, key, value, headers, headersCopy: headers.slice() };
    records[i] = r;
  }
  return { topic, partition, records };
}

/** Appends to one growing buffer. */
class Writer {
  constructor(size = 4096) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }
  reserve(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v) {
    this.reserve(1);
    this.buf[this.pos++] = v;
  }
  u32(v) {
    this.reserve(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }
  i32(v) {
    this.reserve(4);
    this.view.setInt32(this.pos, v, true);
    this.pos += 4;
  }
  i64(v) {
    this.reserve(8);
    this.view.setBigInt64(this.pos, BigInt(v), true);
    this.pos += 8;
  }
  raw(b) {
    this.reserve(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  bytes(b, what) {
    if (b === null || b === undefined) return this.u32(ABSENT);
    const data = asBytes(b, what);
    this.u32(data.length);
    this.raw(data);
  }
  string(s) {
    const data = utf8.encode(String(s));
    this.u32(data.length);
    this.raw(data);
  }
  finish() {
    return this.buf.subarray(0, this.pos);
  }
}

function asBytes(b, what) {
  if (b instanceof Uint8Array) return b;
  if (typeof b === "string") return utf8.encode(b);
  if (ArrayBuffer.isView(b)) return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  throw new TypeError(`a record's ${what} must be a Uint8Array, a string or null`);
}

function sameHeaders(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i][0] !== b[i][0] || a[i][1] !== b[i][1]) return false;
  }
  return true;
}

/** Whether input record `r` is as it came (a null timestamp keeps the input's). */
function unchanged(r, s) {
  return (
    r.key === s.key &&
    r.value === s.value &&
    r.headers === s.headers &&
    sameHeaders(r.headers, s.headersCopy) &&
    (r.timestamp === null || r.timestamp === undefined || r.timestamp === s.timestamp)
  );
}

/** Writes a batch result: one entry per input record, in order. */
export class ResultWriter {
  constructor(count) {
    this.w = new Writer();
    this.w.u32(BATCH_FORMAT);
    this.w.u32(count);
  }

  /** An entry with these output records (none filters the input out); `src` is the input. `src`
   * itself, unchanged, is written as tag 2 ("the input, unchanged"). */
  ok(outputs, src) {
    const w = this.w;
    const s = src && src._src;
    if (outputs.length === 1 && outputs[0] === src && s && unchanged(src, s)) {
      w.u8(2);
      return;
    }
    w.u8(0);
    w.u32(outputs.length);
    for (const r of outputs) {
      if (!(r instanceof Record)) throw new TypeError("a stage must return Records");
      let same = 0;
      if (s) {
        if (r.key === s.key) same |= SAME_KEY;
        if (r.value === s.value) same |= SAME_VALUE;
        if (r.headers === s.headers && sameHeaders(r.headers, s.headersCopy)) same |= SAME_HEADERS;
      }
      w.u8(same);
      w.i64(r.timestamp === null || r.timestamp === undefined ? -(2n ** 63n) : r.timestamp);
      if (!(same & SAME_KEY)) w.bytes(r.key, "key");
      if (!(same & SAME_VALUE)) w.bytes(r.value, "value");
      if (!(same & SAME_HEADERS)) {
        w.u32(r.headers.length);
        for (const [name, value] of r.headers) {
          w.string(name);
          w.bytes(value, "header value");
        }
      }
    }
  }

  /** An entry that sends its input to the dead-letter topic. */
  error(code, message) {
    this.w.u8(1);
    this.w.string(code);
    this.w.string(message);
  }

  finish() {
    return this.w.finish();
  }
}

/** Encodes records as an input batch, as the host does (for tests). */
export function encodeBatch(records, topic = "test", partition = 0) {
  const w = new Writer();
  w.u32(BATCH_FORMAT);
  w.u32(records.length);
  w.string(topic);
  w.i32(partition);
  records.forEach((r, i) => {
    const at = w.pos;
    w.u32(0); // the record's length, set below
    w.i64(r.offset ?? i);
    w.i64(r.timestamp === null || r.timestamp === undefined ? -(2n ** 63n) : r.timestamp);
    w.bytes(r.key, "key");
    w.bytes(r.value, "value");
    w.u32(r.headers.length);
    for (const [name, value] of r.headers) {
      w.string(name);
      w.bytes(value, "header value");
    }
    w.view.setUint32(at, w.pos - at - 4, true);
  });
  return w.finish();
}

/** Reads a batch result against its inputs: one array of records or one `StageError` per input
 * (for tests). */
export function decodeResult(buf, inputs) {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  const u32 = () => {
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const bytes = () => {
    const n = u32();
    if (n === ABSENT) return null;
    const b = buf.slice(pos, pos + n);
    pos += n;
    return b;
  };
  const string = () => {
    const n = u32();
    const s = utf8Strict.decode(buf.subarray(pos, pos + n));
    pos += n;
    return s;
  };
  if (u32() !== BATCH_FORMAT) throw new Error("wrong result format");
  const n = u32();
  if (n !== inputs.length) throw new Error(`the result holds ${n} entries for ${inputs.length} inputs`);
  const entries = inputs.map((src) => {
    const tag = buf[pos++];
    if (tag === 1) {
      const code = string();
      return new StageError(code, string());
    }
    if (tag === 2) {
      const { value, key, headers, timestamp, offset } = src;
      return [new Record(value, { key, headers, timestamp, offset })];
    }
    if (tag !== 0) throw new Error(`unknown result tag ${tag}`);
    const outs = [];
    for (let m = u32(); m > 0; m--) {
      const same = buf[pos];
      const ts = view.getBigInt64(pos + 1, true);
      pos += 9;
      const key = same & SAME_KEY ? src.key : bytes();
      const value = same & SAME_VALUE ? src.value : bytes();
      let headers;
      if (same & SAME_HEADERS) headers = src.headers.slice();
      else {
        headers = [];
        for (let h = u32(); h > 0; h--) headers.push([string(), bytes()]);
      }
      outs.push(
        new Record(value, {
          key,
          headers,
          timestamp: ts === -(2n ** 63n) ? src.timestamp : Number(ts),
          offset: src.offset,
        }),
      );
    }
    return outs;
  });
  if (pos !== buf.length) throw new Error(`${buf.length - pos} trailing bytes after the last entry`);
  return entries;
}

// ---- The stage ----

let host = null;

/** Connects the SDK to the `weir:stage/host` imports (the generated `enricher` glue does it). */
export function setHost(h) {
  host = h;
}

const LEVELS = ["trace", "debug", "info", "warn", "error"];

/** Writes a log line at `level` (`"trace"`, `"debug"`, `"info"`, `"warn"`, `"error"`) with
 * `fields` as key/value pairs. It lands in the runtime's structured logs with the stage,
 * partition and offsets of the batch. Outside a component it goes to the console. */
export function log(level, message, fields = {}) {
  if (!LEVELS.includes(level)) throw new TypeError(`unknown log level ${level}`);
  const pairs = Object.entries(fields).map(([k, v]) => [String(k), String(v)]);
  if (host) host.log(level, String(message), pairs);
  else console.error(`[${level}] ${message}`, fields);
}

/** Adds `delta` to the stage's counter `name` (lower case, digits and `_`). */
export function counterAdd(name, delta = 1) {
  if (host) host.counterAdd(name, BigInt(delta));
}

/** Records `value` in the stage's histogram `name`. */
export function histogramRecord(name, value) {
  if (host) host.histogramRecord(name, Number(value));
}

/** The stage's configuration text (JSON) as an object; empty text or `null` is `{}`. Throws
 * `bad-config` if it is not a JSON object, or repeats a name in an object. */
export function parseConfig(text) {
  const t = (text ?? "").trim();
  if (t === "" || t === "null") return {};
  let config;
  try {
    config = JSON.parse(t);
  } catch (e) {
    throw new StageError("bad-config", `invalid stage config: ${e.message}`);
  }
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    throw new StageError("bad-config", "invalid stage config: not a JSON object");
  }
  checkUniqueMembers(t);
  return config;
}

/** Throws `bad-config` when an object of `text` (valid JSON) repeats a name: `JSON.parse` keeps
 * the last, which would hide a mistake. */
function checkUniqueMembers(text) {
  const stack = []; // per open object: its names so far, and whether a name comes next
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top && top.names && top.nameNext) {
        const name = JSON.parse(text.slice(i, j + 1));
        if (top.names.has(name)) {
          throw new StageError("bad-config", `invalid stage config: duplicate field \`${name}\``);
        }
        top.names.add(name);
        top.nameNext = false;
      }
      i = j;
    } else if (c === "{") stack.push({ names: new Set(), nameNext: true });
    else if (c === "[") stack.push({ names: null, nameNext: false });
    else if (c === "}" || c === "]") stack.pop();
    else if (c === "," && stack.length && stack[stack.length - 1].names) {
      stack[stack.length - 1].nameNext = true;
    }
  }
}

function isClass(f) {
  return typeof f === "function" && /^class[\s{]/.test(Function.prototype.toString.call(f));
}

/** Runs one batch through `process`. */
export function processBatch(process, buf) {
  const { records } = decodeBatch(buf);
  const w = new ResultWriter(records.length);
  for (const r of records) {
    let out;
    try {
      out = process(r);
    } catch (e) {
      if (e instanceof StageError) {
        w.error(e.code, e.detail);
        continue;
      }
      reportPanic(e, r);
      throw e;
    }
    if (out === null || out === undefined) w.ok([], r);
    else if (out instanceof Record) w.ok([out], r);
    else w.ok(Array.from(out), r);
  }
  return w.finish();
}

/** An exception other than `StageError` is the stage's bug: it traps the instance (the host
 * isolates the record and dead-letters it). Log why first, as the Rust SDK does for a panic. */
function reportPanic(e, record) {
  try {
    const where = (e && e.stack ? String(e.stack).split("\n")[0] : "") || "?";
    log("error", e instanceof Error ? `${e.name}: ${e.message}` : String(e), {
      panic: "true",
      location: where,
      offset: record.offset,
    });
  } catch (_) {
    // Logging must not hide the original failure.
  }
}

/** The component's `weir:stage/enrich` export for `stage`: `export const enrich = enricher(f)`.
 *
 * - A function `process(record)` takes no configuration (a non-empty `config` is refused).
 * - A class is built once per instance as `new Stage(config)`, `config` being the pipeline's
 *   `config` table as an object; its `process(record)` method is called for every record. Throw
 *   `new StageError("bad-config", ...)` from the constructor to refuse the configuration.
 */
export function enricher(stage) {
  let process = null;
  return {
    batchFormat() {
      return BATCH_FORMAT;
    },
    init(configText) {
      try {
        if (isClass(stage)) {
          const s = new stage(parseConfig(configText));
          process = (r) => s.process(r);
        } else {
          if (Object.keys(parseConfig(configText)).length > 0) {
            throw new StageError(
              "bad-config",
              "this stage takes no configuration (it is a plain function)",
            );
          }
          process = stage;
        }
      } catch (e) {
        if (e instanceof StageError) throw e;
        throw new StageError("init-failed", e instanceof Error ? `${e.name}: ${e.message}` : String(e));
      }
    },
    process(buf) {
      return processBatch(process, buf);
    },
  };
}
