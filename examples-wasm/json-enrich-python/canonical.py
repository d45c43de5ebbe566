"""JSON read and written exactly as Rust's serde_json does by default, so that this stage's
output is byte-for-byte the Rust stage's.

- Reading: strict UTF-8 and strict JSON (no `NaN` or `Infinity`). An integer that fits u64 or
  i64 stays an integer; any other number (a fraction, an exponent, a larger integer) is an f64,
  and one out of f64's range is an error. `-0` is the float -0.0.
- Writing: compact, object keys sorted (serde_json's map is a B-tree), non-ASCII written as is,
  control characters escaped as `\\u00XX`, floats in their shortest round-trip digits laid out as
  serde_json does (`1e+20`, `1.5e-7`, `100.0`, `-0.0`).

Documents without floats take the C-accelerated `json.dumps`.
"""

import json

U64_MAX = (1 << 64) - 1
I64_MIN = -(1 << 63)
_INF = float("inf")


class _State:
    floats = False


def _parse_float(s):
    _State.floats = True
    f = float(s)
    if f == _INF or f == -_INF:
        raise ValueError(f"number out of range: {s}")
    return f


def _parse_int(s):
    if len(s) < 19 and s != "-0":
        return int(s)
    if s != "-0" and len(s) < 30:
        n = int(s)
        if I64_MIN <= n <= U64_MAX:
            return n
    return _parse_float(s)


def _parse_constant(s):
    raise ValueError(f"expected value, found {s}")


_decoder = json.JSONDecoder(
    parse_float=_parse_float, parse_int=_parse_int, parse_constant=_parse_constant
)


def loads(data):
    """Parses JSON `data` (bytes or str): returns `(value, has_floats)`. Raises `ValueError` on
    anything serde_json refuses (bad UTF-8 included)."""
    _State.floats = False
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    try:
        value = _decoder.decode(text)
    except RecursionError:
        raise ValueError("recursion limit exceeded") from None
    # Cheap tests first: only a text with that many brackets can nest too deep, only one with a
    # `\u` escape can hold a lone surrogate.
    if text.count("[") + text.count("{") >= MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise ValueError("recursion limit exceeded")
    if "\\u" in text and not _well_formed(value):
        raise ValueError("lone surrogate in hex escape")
    return value, _State.floats


# serde_json refuses more than 127 nested arrays and objects.
MAX_DEPTH = 127


def _depth(value):
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = v.values()
        elif not isinstance(v, list):
            continue
        deepest = max(deepest, d)
        stack.extend((x, d + 1) for x in v)
    return deepest


def _well_formed(value):
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            v = (v,)
        elif isinstance(v, dict):
            stack.extend(v.values())
            v = v.keys()
        elif isinstance(v, list):
            stack.extend(v)
            continue
        else:
            continue
        for s in v:
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def dumps(value, has_floats=True):
    """Writes `value` as compact JSON bytes, as serde_json would. `has_floats=False` (from
    `loads`) takes the fast path. Raises `ValueError` for a string that is not valid Unicode
    (a lone surrogate from a `\\ud800` escape)."""
    try:
        if not has_floats:
            text = json.dumps(
                value, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                check_circular=False,
            )
        else:
            out = []
            _write(value, out)
            text = "".join(out)
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("lone leading surrogate in hex escape") from None


_encode_str = json.encoder.encode_basestring  # escapes exactly what serde_json escapes


def _write(v, out):
    if isinstance(v, str):
        out.append(_encode_str(v))
    elif v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(int.__repr__(v))
    elif isinstance(v, float):
        out.append(ryu(v))
    elif isinstance(v, dict):
        out.append("{")
        first = True
        for k in sorted(v):
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(k))
            out.append(":")
            _write(v[k], out)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _write(x, out)
        out.append("]")
    else:
        raise TypeError(f"cannot write {type(v).__name__} as JSON")


def ryu(f):
    """A finite float as serde_json writes it (the `zmij` crate's `format_finite`, ryu's layout
    with a signed exponent): fixed notation from 1e-5 to below 1e16, else `1e+16`, `1.5e-7`."""
    sign = "-" if f < 0 or (f == 0 and str(f).startswith("-")) else ""
    if f == 0:
        return sign + "0.0"
    r = repr(abs(f))  # shortest round-trip digits, as serde_json finds them
    mantissa, _, exp = r.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    # digits * 10^k, with `k` counted from the last written digit
    k = int(exp or 0) - len(frac)
    stripped = digits.rstrip("0")
    k += len(digits) - len(stripped)
    digits = stripped
    length = len(digits)
    kk = length + k  # 10^(kk-1) <= |f| < 10^kk
    if 0 <= k and kk <= 16:
        s = digits + "0" * k + ".0"
    elif 0 < kk <= 16:
        s = digits[:kk] + "." + digits[kk:]
    elif -5 < kk <= 0:
        s = "0." + "0" * (-kk) + digits
    else:
        exp = f"e{kk - 1:+d}"
        s = digits + exp if length == 1 else digits[0] + "." + digits[1:] + exp
    return sign + s
