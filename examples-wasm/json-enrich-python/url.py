"""A small parser for the absolute URLs found in clicks: the Rust stage's `url.rs`, rule for rule.

It splits `scheme://[userinfo@]host[:port][/path][?query][#fragment]` and checks just enough to
refuse what is not a URL; it does not normalise (no IDNA, no `..` resolution).
"""

_SCHEME_REST = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.")
_ALNUM = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HOST_EXTRA = set("-._~%!$&'()*+,;=")
_IP6_EXTRA = set(":.%")
_HEX = {c: int(c, 16) for c in "0123456789abcdefABCDEF"}


class Url:
    __slots__ = ("scheme", "host", "port", "path", "query", "fragment")

    def __init__(self, scheme, host, port, path, query, fragment):
        self.scheme, self.host, self.port = scheme, host, port
        self.path, self.query, self.fragment = path, query, fragment

    def section(self):
        """The first segment of the path: `products` for `/products/42`, empty for `/`."""
        path = self.path[1:] if self.path.startswith("/") else self.path
        return path.split("/", 1)[0]

    def query_pairs(self):
        """The query's `name=value` pairs in order, percent-decoded (`+` is a space)."""
        for pair in (self.query or "").split("&"):
            if pair:
                name, _, value = pair.partition("=")
                yield decode(name), decode(value)


def parse_url(text):
    """Parses an absolute URL with an authority (`scheme://host...`); `None` if it is not one."""
    if any(c <= " " or c == "\x7f" for c in text):
        return None
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme or not (scheme[0].isascii() and scheme[0].isalpha()):
        return None
    if any(c not in _SCHEME_REST for c in scheme[1:]):
        return None
    end = len(rest)
    for c in "/?#":
        i = rest.find(c)
        if i != -1 and i < end:
            end = i
    authority, rest = rest[:end], rest[end:]
    host_port = authority.rpartition("@")[2]
    split = split_port(host_port)
    if split is None:
        return None
    host, port = split
    if not valid_host(host):
        return None
    rest, hashed, fragment = rest.partition("#")
    path, asked, query = rest.partition("?")
    return Url(scheme, host, port, path or "/", query if asked else None,
               fragment if hashed else None)


def split_port(host_port):
    if host_port.startswith("["):
        close = host_port.find("]")
        if close == -1:
            return None
        host, after = host_port[: close + 1], host_port[close + 1 :]
        if after == "":
            port = ""
        elif after.startswith(":"):
            port = after[1:]
        else:
            return None
    else:
        host, colon, port = host_port.rpartition(":")
        if not colon:
            host, port = host_port, ""
    if port == "":
        return host, None
    if not all("0" <= c <= "9" for c in port):
        return None
    digits = port.lstrip("0")
    n = int(digits or "0") if len(digits) <= 5 else 1 << 16
    return (host, n) if n <= 0xFFFF else None


def valid_host(host):
    if host.startswith("[") and host.endswith("]") and len(host) >= 2:
        ip6 = host[1:-1]
        return ip6 != "" and all(c in _ALNUM or c in _IP6_EXTRA for c in ip6)
    return host != "" and all(
        not c.isascii() or c in _ALNUM or c in _HOST_EXTRA for c in host
    )


def decode(text):
    """Percent-decodes form-encoded text; malformed escapes stay as written, invalid UTF-8 is
    replaced (U+FFFD)."""
    if "%" not in text and "+" not in text:
        return text
    b = text.encode("utf-8")
    out = bytearray()
    i, n = 0, len(b)
    while i < n:
        c = b[i]
        if c == 0x2B:  # +
            out.append(0x20)
        elif c == 0x25:  # %
            hi = _HEX.get(chr(b[i + 1])) if i + 1 < n else None
            lo = _HEX.get(chr(b[i + 2])) if i + 2 < n else None
            if hi is not None and lo is not None:
                out.append(hi << 4 | lo)
                i += 2
            else:
                out.append(0x25)
        else:
            out.append(c)
        i += 1
    return out.decode("utf-8", "replace")


def rust_debug(s):
    """`s` quoted as Rust's `{:?}` writes a string (ASCII escapes; other characters as is)."""
    out = ['"']
    for c in s:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\0":
            out.append("\\0")
        elif c < " " or c == "\x7f":
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)
