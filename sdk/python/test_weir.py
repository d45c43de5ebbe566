"""Tests of the Python SDK on plain Python: `python3 -m unittest` in sdk/python."""

import struct
import unittest

import weir
from weir import Record, StageError, batch, testing


class BatchTest(unittest.TestCase):
    def test_round_trip(self):
        records = [
            Record(b'{"a":1}', key=b"k", headers=[("h", b"v"), ("n", None)], timestamp=5, offset=7),
            Record(None, key=None, offset=8),
            Record("text", offset=9),
        ]
        buf = batch.encode_batch(records, "clicks", 3)
        topic, partition, decoded = batch.decode_batch(buf)
        self.assertEqual((topic, partition), ("clicks", 3))
        self.assertEqual(
            [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in decoded],
            [(7, 5, b"k", b'{"a":1}', [("h", b"v"), ("n", None)]), (8, None, None, None, []),
             (9, None, None, b"text", [])],
        )

    def test_untouched_fields_are_sent_as_the_same(self):
        _, _, (r,) = batch.decode_batch(batch.encode_batch([Record(b"v", key=b"k", timestamp=5)]))
        w = batch.ResultWriter(1)
        w.ok([r], r)
        # format, count, tag 2: the input, unchanged
        self.assertEqual(w.finish()[8:], b"\x02")
        r.timestamp = 6
        w = batch.ResultWriter(1)
        w.ok([r], r)
        # format, count, tag, output count, same byte = key | value | headers
        self.assertEqual(w.finish()[8], 0)
        self.assertEqual(w.finish()[13], 0b111)
        r.value = b"changed"
        w = batch.ResultWriter(1)
        w.ok([r], r)
        self.assertEqual(w.finish()[13], 0b101)

    def test_headers_added_in_place_are_sent(self):
        def stage(r):
            r.headers.append(("h", b"1"))
            return r

        for headers in ([], [("g", None)]):
            out = testing.run(stage, {}, [Record(b"v", headers=headers)])
            self.assertEqual(out[0][0].headers, headers + [("h", b"1")])

    def test_refuses_other_formats(self):
        with self.assertRaises(batch.DecodeError):
            batch.decode_batch(b"\x01\x00\x00\x00\x00\x00\x00\x00")

    def test_refuses_a_record_whose_length_disagrees_with_its_fields(self):
        buf = bytearray(batch.encode_batch([Record(b"v", key=b"k", headers=[("h", b"1")])]))
        at = 4 + 4 + 4 + len("test") + 4  # format, count, topic, partition
        (length,) = struct.unpack_from("<I", buf, at)
        for wrong in (length - 1, length + 1):
            struct.pack_into("<I", buf, at, wrong)
            with self.assertRaises(batch.DecodeError):
                batch.decode_batch(bytes(buf) + b"\x00")
        struct.pack_into("<I", buf, at, length)
        self.assertEqual(batch.decode_batch(bytes(buf))[2][0].value, b"v")

    def test_tag_2_reads_back_as_the_input(self):
        src = Record(b"v", key=b"k", headers=[("h", b"1")], timestamp=5, offset=7)
        (out,) = batch.decode_result(struct.pack("<II", 3, 1) + b"\x02", [src])
        self.assertEqual(out, [src])
        with self.assertRaises(batch.DecodeError):
            batch.decode_result(struct.pack("<II", 3, 1) + b"\x03", [src])


class StageTest(unittest.TestCase):
    def test_shapes(self):
        def stage(r):
            if r.value == b"drop":
                return None
            if r.value == b"two":
                return [Record(b"a"), Record(b"b", key=b"k2")]
            if r.value == b"bad":
                raise StageError("bad-value", "no")
            if r.value == b"as is":
                return r
            r.set_header("seen", b"1")
            return r

        as_is = Record(b"as is", key=b"k", headers=[("h", None)], timestamp=5)
        out = testing.run(stage, {}, [b"keep", b"drop", b"two", b"bad", as_is])
        self.assertEqual(out[0][0].header("seen"), b"1")
        self.assertEqual(out[1], [])
        self.assertEqual([(r.value, r.key, r.offset) for r in out[2]],
                         [(b"a", None, 2), (b"b", b"k2", 2)])
        self.assertEqual(out[3], StageError("bad-value", "no"))
        self.assertEqual(out[4], [Record(b"as is", key=b"k", headers=[("h", None)], timestamp=5,
                                         offset=4)])

    def test_other_exceptions_escape(self):
        def stage(r):
            raise ZeroDivisionError("oops")

        with self.assertRaises(ZeroDivisionError):
            testing.run(stage, {}, [b"x"])

    def test_configuration(self):
        class Stage:
            def __init__(self, config):
                self.config = config

            def process(self, r):
                r.value = repr(self.config)
                return r

        self.assertEqual(testing.run(Stage, "", [b"x"])[0][0].value, b"{}")
        self.assertEqual(testing.run(Stage, {"a": 1}, [b"x"])[0][0].value, b"{'a': 1}")
        for bad in ["[", "42", '{"a":1,"a":2}']:
            with self.assertRaises(StageError) as cm:
                testing.Harness(Stage, bad)
            self.assertEqual(cm.exception.code, "bad-config", bad)
        with self.assertRaises(StageError) as cm:
            testing.Harness(lambda r: r, {"a": 1})
        self.assertEqual(cm.exception.code, "bad-config")

    def test_value_helpers(self):
        r = Record(b"\xff")
        with self.assertRaises(StageError) as cm:
            r.value_str()
        self.assertEqual(cm.exception.code, "bad-utf8")
        r.value = b"[1"
        with self.assertRaises(StageError) as cm:
            r.value_json()
        self.assertEqual(cm.exception.code, "bad-json")
        r.set_value_json({"b": "é", "a": [1]})
        self.assertEqual(r.value_json(), {"b": "é", "a": [1]})
        self.assertEqual(weir.BATCH_FORMAT, 3)


if __name__ == "__main__":
    unittest.main()
