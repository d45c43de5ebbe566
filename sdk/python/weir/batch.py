"""The batch encoding, format 3 (`sdk/wit/BATCH.md`): decode a batch, encode a batch result.

Pure Python, so it runs the same natively (tests) and inside the component.
"""

from struct import Struct

from .record import Record

FORMAT = 3

_U32 = Struct("<I")
_I32 = Struct("<i")
_I64 = Struct("<q")
_RECORD = Struct("<Iqq")  # length, offset, timestamp
_ABSENT = 0xFFFF_FFFF
_NO_TIMESTAMP = -(1 << 63)
_SAME_KEY, _SAME_VALUE, _SAME_HEADERS = 1, 2, 4


class DecodeError(ValueError):
    """The buffer is not a valid batch."""


def decode_batch(buf):
    """Reads an input batch: returns `(topic, partition, records)`."""
    view = memoryview(buf)
    pos = 0

    def u32():
        nonlocal pos
        (v,) = _U32.unpack_from(view, pos)
        pos += 4
        return v

    def opt_bytes():
        nonlocal pos
        (n,) = _U32.unpack_from(view, pos)
        pos += 4
        if n == _ABSENT:
            return None
        end = pos + n
        if end > len(view):
            raise DecodeError(f"truncated at byte {pos}")
        b = bytes(view[pos:end])
        pos = end
        return b

    def string():
        nonlocal pos
        (n,) = _U32.unpack_from(view, pos)
        pos += 4
        end = pos + n
        if end > len(view):
            raise DecodeError(f"truncated at byte {pos}")
        s = str(view[pos:end], "utf-8")
        pos = end
        return s

    try:
        fmt = u32()
        if fmt != FORMAT:
            raise DecodeError(f"batch format {fmt} is not supported (this SDK speaks {FORMAT})")
        count = u32()
        topic = string()
        (partition,) = _I32.unpack_from(view, pos)
        pos += 4
        records = []
        for _ in range(count):
            (length, offset, ts) = _RECORD.unpack_from(view, pos)
            end = pos + 4 + length
            pos += 20
            key = opt_bytes()
            value = opt_bytes()
            headers = [(string(), opt_bytes()) for _ in range(u32())]
            if pos != end:
                raise DecodeError(f"the record ending at byte {pos} says it ends at byte {end}")
            records.append(
                Record._input(offset, None if ts == _NO_TIMESTAMP else ts, key, value, headers)
            )
    except Exception as e:  # struct.error, UnicodeDecodeError
        if isinstance(e, DecodeError):
            raise
        raise DecodeError(f"not a valid batch: {e}") from e
    return topic, partition, records


def _put_bytes(out, b):
    if b is None:
        out += _U32.pack(_ABSENT)
    else:
        out += _U32.pack(len(b))
        out += b


def _put_str(out, s):
    b = s.encode("utf-8")
    out += _U32.pack(len(b))
    out += b


def _as_bytes(v, what):
    if v is None or isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"a record's {what} must be bytes, str or None, not {type(v).__name__}")


def _put_output(out, rec, src):
    """One output record; `src` is the input it derives from. Fields that are the input's own
    objects, untouched, are not written again (the `same` bits)."""
    same = 0
    if src is not None:
        if rec.key is src._key0:
            same |= _SAME_KEY
        if rec.value is src._value0:
            same |= _SAME_VALUE
        if src._same_headers(rec.headers):
            same |= _SAME_HEADERS
    out.append(same)
    out += _I64.pack(_NO_TIMESTAMP if rec.timestamp is None else rec.timestamp)
    if not same & _SAME_KEY:
        _put_bytes(out, _as_bytes(rec.key, "key"))
    if not same & _SAME_VALUE:
        _put_bytes(out, _as_bytes(rec.value, "value"))
    if not same & _SAME_HEADERS:
        headers = rec.headers
        out += _U32.pack(len(headers))
        for name, value in headers:
            _put_str(out, name)
            _put_bytes(out, _as_bytes(value, "header value"))


class ResultWriter:
    """Writes a batch result, one entry per input record, in order."""

    def __init__(self, count):
        self._out = bytearray()
        self._out += _U32.pack(FORMAT)
        self._out += _U32.pack(count)

    def ok(self, outputs, src=None):
        """An entry with these output records (an empty list filters the input out). `src`'s own
        record, unchanged, is written as tag 2 ("the input, unchanged")."""
        out = self._out
        if len(outputs) == 1 and outputs[0] is src and src._unchanged():
            out.append(2)
            return
        out.append(0)
        out += _U32.pack(len(outputs))
        for rec in outputs:
            _put_output(out, rec, src)

    def error(self, code, message):
        """An entry that sends its input to the dead-letter topic."""
        out = self._out
        out.append(1)
        _put_str(out, code)
        _put_str(out, message)

    def finish(self):
        return bytes(self._out)


def encode_batch(records, topic="test", partition=0):
    """Encodes `records` as an input batch, as the host does (for tests)."""
    out = bytearray()
    out += _U32.pack(FORMAT)
    out += _U32.pack(len(records))
    _put_str(out, topic)
    out += _I32.pack(partition)
    for i, r in enumerate(records):
        at = len(out)
        out += _U32.pack(0)  # the record's length, set below
        out += _I64.pack(r.offset if r.offset is not None else i)
        out += _I64.pack(_NO_TIMESTAMP if r.timestamp is None else r.timestamp)
        _put_bytes(out, _as_bytes(r.key, "key"))
        _put_bytes(out, _as_bytes(r.value, "value"))
        out += _U32.pack(len(r.headers))
        for name, value in r.headers:
            _put_str(out, name)
            _put_bytes(out, _as_bytes(value, "header value"))
        _U32.pack_into(out, at, len(out) - at - 4)
    return bytes(out)


def decode_result(buf, inputs):
    """Reads a batch result against its `inputs`: one `list[Record]` or `StageError` per input
    (for tests)."""
    from .error import StageError

    view = memoryview(buf)
    pos = 0

    def u32():
        nonlocal pos
        (v,) = _U32.unpack_from(view, pos)
        pos += 4
        return v

    def opt_bytes():
        nonlocal pos
        n = u32()
        if n == _ABSENT:
            return None
        b = bytes(view[pos : pos + n])
        pos += n
        return b

    def string():
        nonlocal pos
        n = u32()
        s = str(view[pos : pos + n], "utf-8")
        pos += n
        return s

    if u32() != FORMAT:
        raise DecodeError("wrong result format")
    n = u32()
    if n != len(inputs):
        raise DecodeError(f"the result holds {n} entries for {len(inputs)} input records")
    entries = []
    for src in inputs:
        tag = view[pos]
        pos += 1
        if tag == 1:
            code = string()
            entries.append(StageError(code, string()))
            continue
        if tag == 2:
            entries.append([
                Record(src.value, key=src.key, headers=src.headers, timestamp=src.timestamp,
                       offset=src.offset)
            ])
            continue
        if tag != 0:
            raise DecodeError(f"unknown result tag {tag}")
        outs = []
        for _ in range(u32()):
            same = view[pos]
            (ts,) = _I64.unpack_from(view, pos + 1)
            pos += 9
            key = src.key if same & _SAME_KEY else opt_bytes()
            value = src.value if same & _SAME_VALUE else opt_bytes()
            if same & _SAME_HEADERS:
                headers = list(src.headers)
            else:
                headers = [(string(), opt_bytes()) for _ in range(u32())]
            outs.append(
                Record(
                    value,
                    key=key,
                    headers=headers,
                    timestamp=src.timestamp if ts == _NO_TIMESTAMP else ts,
                    offset=src.offset,
                )
            )
        entries.append(outs)
    if pos != len(view):
        raise DecodeError(f"{len(view) - pos} trailing bytes after the last entry")
    return entries
