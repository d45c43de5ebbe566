"""The record a stage receives and returns."""

import json

from .error import StageError


class Record:
    """A Kafka record as a stage sees it. Change it in place and return it, or make new ones.

    - `value`, `key`: `bytes`, or `None` for a null Kafka value or key. Assigning a `str` is
      fine: it is written as UTF-8.
    - `headers`: a list of `(name, value)` pairs in order; names are `str`, values `bytes` or
      `None`. Kafka allows repeated names.
    - `timestamp`: milliseconds since the Unix epoch, or `None`. An output without one keeps its
      input's timestamp.
    - `offset`: the source offset of the record this one derives from (read only in effect: the
      host keeps an output's offset from its input).
    """

    __slots__ = ("offset", "timestamp", "key", "value", "headers", "_timestamp0", "_key0", "_value0",
                 "_headers0", "_headers0_list")

    def __init__(self, value=None, *, key=None, headers=None, timestamp=None, offset=None):
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = list(headers) if headers else []
        self._timestamp0 = self._key0 = self._value0 = self._headers0 = self._headers0_list = None

    @classmethod
    def _input(cls, offset, timestamp, key, value, headers):
        r = cls.__new__(cls)
        r.offset = offset
        r.timestamp = r._timestamp0 = timestamp
        r.key = r._key0 = key
        r.value = r._value0 = value
        r.headers = r._headers0_list = headers
        r._headers0 = list(headers) if headers else None
        return r

    def _same_headers(self, h):
        """Whether `h` is this input's own header list, still holding the input's headers."""
        return h is self._headers0_list and (h == self._headers0 if self._headers0 else not h)

    def _unchanged(self):
        """Whether this input record is as it came (a timestamp of `None` keeps the input's)."""
        return (self.key is self._key0 and self.value is self._value0
                and self._same_headers(self.headers)
                and (self.timestamp is None or self.timestamp == self._timestamp0))

    def value_str(self):
        """The value as text. Raises `missing-value` (null value) or `bad-utf8`."""
        if self.value is None:
            raise StageError("missing-value", "the record has a null value")
        if isinstance(self.value, str):
            return self.value
        try:
            return self.value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise StageError("bad-utf8", f"value is not UTF-8: {e}") from None

    def value_json(self):
        """The value parsed as JSON. Raises `missing-value` or `bad-json`."""
        if self.value is None:
            raise StageError("missing-value", "the record has a null value")
        try:
            return json.loads(self.value)
        except ValueError as e:
            raise StageError("bad-json", f"the value is not JSON: {e}") from None

    def set_value_json(self, obj):
        """Sets the value to `obj` written as compact JSON."""
        self.value = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def header(self, name):
        """The value of the first header called `name`; `None` if there is none (or it is null)."""
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def set_header(self, name, value):
        """Sets header `name`: replaces the first of that name and drops the others, or appends."""
        out, placed = [], False
        for n, v in self.headers:
            if n != name:
                out.append((n, v))
            elif not placed:
                out.append((name, value))
                placed = True
        if not placed:
            out.append((name, value))
        self.headers = out

    def remove_header(self, name):
        """Removes every header called `name`."""
        self.headers = [(n, v) for n, v in self.headers if n != name]

    def __repr__(self):
        return (f"Record(value={self.value!r}, key={self.key!r}, headers={self.headers!r}, "
                f"timestamp={self.timestamp!r}, offset={self.offset!r})")

    def __eq__(self, other):
        if not isinstance(other, Record):
            return NotImplemented
        return (self.offset, self.timestamp, self.key, self.value, self.headers) == (
            other.offset, other.timestamp, other.key, other.value, other.headers)
