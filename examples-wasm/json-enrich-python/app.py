"""Example Weir stage in Python: json-enrich, the same stage as `examples-wasm/json-enrich`.

Input: a click as a JSON object, such as
`{"user":"u17","url":"https://shop.example/products/42?ref=mail","ts":1700000000000}`.
Output: the same object plus fields derived from its URL and timestamp: `domain` (host,
ASCII lower-cased, without port), `path` (`/` when empty), `section` (the path's first segment),
the `ref` and `utm_*` query parameters (percent-decoded), and `hour` (the UTC hour of `ts` in
milliseconds, when `ts` is a number). Derived fields overwrite input fields of the same name.
Key and headers pass through.

The output is written exactly as the Rust stage writes it (`canonical.py`): keys sorted,
compact, numbers as serde_json prints them.

Config: `{ field = "url" }`: the field that holds the URL (default `url`).

Errors: `bad-json` (value not a JSON object), `missing-field` (no string at `field`),
`bad-url` (not an absolute `scheme://host/...` URL).
"""

import weir
from weir import StageError

import canonical
from url import parse_url, rust_debug

HOUR_MS = 3_600_000
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


class JsonEnrich:
    def __init__(self, config):
        unknown = [k for k in config if k != "field"]
        if unknown:
            raise StageError(
                "bad-config", f"invalid stage config: unknown field `{unknown[0]}`, expected `field`"
            )
        field = config.get("field", "url")
        if not isinstance(field, str):
            raise StageError("bad-config", "invalid stage config: `field` must be a string")
        self.field = field

    def process(self, record):
        record.value = enrich_value(record.value or b"", self.field)
        return record


Enrich = weir.enricher(JsonEnrich)


def enrich_value(value, field):
    """The stage's logic on one value (bytes in, bytes out)."""
    try:
        click, has_floats = canonical.loads(value)
    except ValueError as e:
        raise StageError("bad-json", f"the value is not JSON: {e}") from None
    if not isinstance(click, dict):
        raise StageError("bad-json", "the value is not a JSON object")
    click.update(derive(click, field))
    try:
        return canonical.dumps(click, has_floats)
    except ValueError as e:
        raise StageError("bad-json", f"the value is not JSON: {e}") from None


def derive(click, field):
    """The fields derived from a click, in order (a later field of the same name wins)."""
    if field not in click:
        raise StageError("missing-field", f"no `{field}` field")
    text = click[field]
    if not isinstance(text, str):
        raise StageError("missing-field", f"`{field}` is not a string")
    url = parse_url(text)
    if url is None:
        raise StageError("bad-url", f"cannot parse {rust_debug(text)}")
    derived = [
        ("domain", ascii_lower(url.host)),
        ("path", url.path),
        ("section", url.section()),
    ]
    for name, value in url.query_pairs():
        if name == "ref" or name.startswith("utm_"):
            derived.append((name, value))
    hour = utc_hour(click.get("ts"))
    if hour is not None:
        derived.append(("hour", hour))
    return derived


def ascii_lower(s):
    """Lower-cases ASCII letters only, as Rust's `to_ascii_lowercase`."""
    return s.lower() if s.isascii() else s.translate(_LOWER)


_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def utc_hour(ts):
    """The UTC hour of a millisecond timestamp, with serde_json's number semantics: an integer
    outside i64 or a float goes through `as i64` (truncating, saturating)."""
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        return None
    if isinstance(ts, float) or not I64_MIN <= ts <= I64_MAX:
        f = float(ts)
        ms = I64_MAX if f >= 2.0**63 else I64_MIN if f < -(2.0**63) else int(f)
    else:
        ms = ts
    return (ms // HOUR_MS) % 24
