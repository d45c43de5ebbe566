"""Run a stage natively through the same batch encoding as the host.

    from weir import Record, testing

    out = testing.run(MyStage, {"field": "url"}, [Record(b'{"url":"https://a.example/"}')])
    assert out[0][0].value == ...          # one list of records, or a StageError, per input
"""

import json

from . import batch
from .error import StageError
from .record import Record


class Harness:
    """One instance of a stage, as the host makes it: `init` once, then `process` batches."""

    def __init__(self, stage, config=None):
        """`config` is a `dict` or JSON text. Raises `StageError` if `init` refuses it."""
        from . import enricher

        if not isinstance(config, str):
            config = json.dumps(config if config is not None else {})
        exported = stage if hasattr(stage, "stage") and hasattr(stage, "batch_format") else enricher(stage)
        self._export = exported()
        self._export.init(config)

    def process(self, records):
        """Runs `records` (`Record`s, or values as `bytes`/`str`) as one batch; returns one list
        of output records or one `StageError` per input."""
        records = [r if isinstance(r, Record) else Record(r) for r in records]
        for i, r in enumerate(records):
            if r.offset is None:
                r.offset = i
        buf = batch.encode_batch(records)
        _, _, inputs = batch.decode_batch(buf)
        return batch.decode_result(self._export.process(buf), inputs)


def run(stage, config, records):
    """`Harness(stage, config).process(records)`."""
    return Harness(stage, config).process(records)


__all__ = ["Harness", "StageError", "run"]
