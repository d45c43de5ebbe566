// A small parser for the absolute URLs found in clicks: the Rust stage's `url.rs`, rule for rule.
//
// It splits `scheme://[userinfo@]host[:port][/path][?query][#fragment]` and checks just enough to
// refuse what is not a URL; it does not normalise (no IDNA, no `..` resolution).

const SCHEME_REST = /^[A-Za-z0-9+.-]*$/;
const HOST_ASCII = /^[A-Za-z0-9\-._~%!$&'()*+,;=]$/;
const IP6 = /^[A-Za-z0-9:.%]+$/;
const encoder = new TextEncoder();
const lossy = new TextDecoder("utf-8", { ignoreBOM: true });

export class Url {
  constructor(scheme, host, port, path, query, fragment) {
    Object.assign(this, { scheme, host, port, path, query, fragment });
  }

  /** The first segment of the path: `products` for `/products/42`, empty for `/`. */
  section() {
    const path = this.path.startsWith("/") ? this.path.slice(1) : this.path;
    return path.split("/", 1)[0];
  }

  /** The query's `[name, value]` pairs in order, percent-decoded (`+` is a space). */
  *queryPairs() {
    for (const pair of (this.query ?? "").split("&")) {
      if (!pair) continue;
      const eq = pair.indexOf("=");
      const [name, value] = eq === -1 ? [pair, ""] : [pair.slice(0, eq), pair.slice(eq + 1)];
      yield [decode(name), decode(value)];
    }
  }
}

/** Parses an absolute URL with an authority (`scheme://host...`); `null` if it is not one. */
export function parseUrl(text) {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return null;
  }
  const sep = text.indexOf("://");
  if (sep === -1) return null;
  const scheme = text.slice(0, sep);
  let rest = text.slice(sep + 3);
  if (!/^[A-Za-z]/.test(scheme) || !SCHEME_REST.test(scheme.slice(1))) return null;
  let end = rest.search(/[/?#]/);
  if (end === -1) end = rest.length;
  const authority = rest.slice(0, end);
  rest = rest.slice(end);
  const hostPort = authority.slice(authority.lastIndexOf("@") + 1);
  const split = splitPort(hostPort);
  if (split === null) return null;
  const [host, port] = split;
  if (!validHost(host)) return null;
  let fragment = null;
  const hash = rest.indexOf("#");
  if (hash !== -1) {
    fragment = rest.slice(hash + 1);
    rest = rest.slice(0, hash);
  }
  let query = null;
  const q = rest.indexOf("?");
  if (q !== -1) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  return new Url(scheme, host, port, rest || "/", query, fragment);
}

function splitPort(hostPort) {
  let host;
  let port;
  if (hostPort.startsWith("[")) {
    const close = hostPort.indexOf("]");
    if (close === -1) return null;
    host = hostPort.slice(0, close + 1);
    const after = hostPort.slice(close + 1);
    if (after === "") port = "";
    else if (after.startsWith(":")) port = after.slice(1);
    else return null;
  } else {
    const colon = hostPort.lastIndexOf(":");
    [host, port] = colon === -1 ? [hostPort, ""] : [hostPort.slice(0, colon), hostPort.slice(colon + 1)];
  }
  if (port === "") return [host, null];
  if (!/^[0-9]+$/.test(port)) return null;
  const digits = port.replace(/^0+/, "");
  const n = digits.length <= 5 ? Number(digits || "0") : 65536;
  return n <= 0xffff ? [host, n] : null;
}

function validHost(host) {
  if (host.length >= 2 && host.startsWith("[") && host.endsWith("]")) {
    return IP6.test(host.slice(1, -1));
  }
  if (host === "") return false;
  for (const c of host) {
    if (c.charCodeAt(0) < 0x80 && !HOST_ASCII.test(c)) return false;
  }
  return true;
}

function hex(b) {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  return -1;
}

/** Percent-decodes form-encoded text; malformed escapes stay as written, invalid UTF-8 is
 * replaced (U+FFFD). */
export function decode(text) {
  if (!text.includes("%") && !text.includes("+")) return text;
  const b = encoder.encode(text);
  const out = new Uint8Array(b.length);
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c === 0x2b) out[n++] = 0x20;
    else if (c === 0x25) {
      const hi = i + 1 < b.length ? hex(b[i + 1]) : -1;
      const lo = i + 2 < b.length ? hex(b[i + 2]) : -1;
      if (hi >= 0 && lo >= 0) {
        out[n++] = (hi << 4) | lo;
        i += 2;
      } else out[n++] = 0x25;
    } else out[n++] = c;
  }
  return lossy.decode(out.subarray(0, n));
}

/** `s` quoted as Rust's `{:?}` writes a string (ASCII escapes; other characters as is). */
export function rustDebug(s) {
  let out = '"';
  for (const c of s) {
    const code = c.codePointAt(0);
    if (c === '"') out += '\\"';
    else if (c === "\\") out += "\\\\";
    else if (c === "\n") out += "\\n";
    else if (c === "\r") out += "\\r";
    else if (c === "\t") out += "\\t";
    else if (c === "\0") out += "\\0";
    else if (code < 0x20 || code === 0x7f) out += `\\u{${code.toString(16)}}`;
    else out += c;
  }
  return `${out}"`;
}
