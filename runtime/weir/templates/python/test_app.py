"""Tests of the stage on plain Python: `./test.sh` (or `python3 -m unittest` with the SDK on
PYTHONPATH)."""

import unittest

from weir import Record, StageError, testing

import app


class StageTest(unittest.TestCase):
    def test_shouts(self):
        out = testing.run(app.Stage, {"suffix": "?"}, [Record(b"hi", key=b"k")])
        self.assertEqual((out[0][0].value, out[0][0].key), (b"HI?", b"k"))

    def test_refuses_empty_values(self):
        out = testing.run(app.Stage, {}, [Record(b""), Record(None)])
        self.assertEqual([e.code for e in out], ["empty-value", "empty-value"])

    def test_refuses_unknown_config(self):
        with self.assertRaises(StageError):
            testing.Harness(app.Stage, {"sufix": "?"})


if __name__ == "__main__":
    unittest.main()
