"""The Python SDK for Weir stages.

A Weir stage is a WebAssembly component that the Weir runtime runs between a Kafka source and a
Kafka sink. An enrich stage sees each record once, in offset order, and turns it into zero or
more records. With this SDK it is one plain function (or a class, for configuration and state):

    import weir

    def process(record: weir.Record) -> weir.Record:
        record.value = record.value_str().upper()
        return record

    Enrich = weir.enricher(process)

`process` returns a `Record` (map), `None` (filter) or a list of records (flat-map), or raises
`StageError` to send the record to the dead-letter topic. Build the module with
`componentize-py` (see the README).

The SDK implements the contract `weir:stage@0.1.0` (`CONTRACT`), world `enricher`, and batch
encoding format 3 (`BATCH_FORMAT`).
"""

import inspect
import json
import traceback

from . import batch
from .error import StageError
from .host import IN_WASM, counter_add, histogram_record, log
from .record import Record

__all__ = [
    "BATCH_FORMAT",
    "CONTRACT",
    "Record",
    "StageError",
    "counter_add",
    "enricher",
    "histogram_record",
    "log",
]

CONTRACT = "weir:stage@0.1.0"
BATCH_FORMAT = batch.FORMAT


def _unique_members(pairs):
    config = {}
    for name, value in pairs:
        if name in config:
            raise StageError("bad-config", f"invalid stage config: duplicate field `{name}`")
        config[name] = value
    return config


def parse_config(text):
    """The stage's configuration text (JSON) as a `dict`; empty text or `null` is `{}`.
    Raises `bad-config` if it is not a JSON object, or repeats a name in an object."""
    text = (text or "").strip()
    if text in ("", "null"):
        return {}
    try:
        config = json.loads(text, object_pairs_hook=_unique_members)
    except ValueError as e:
        raise StageError("bad-config", f"invalid stage config: {e}") from None
    if not isinstance(config, dict):
        raise StageError("bad-config", "invalid stage config: not a JSON object")
    return config


class _Stage:
    """One instance's stage: the user's function, or an object of the user's class."""

    def __init__(self, stage, config_text):
        if inspect.isclass(stage):
            self.process = stage(parse_config(config_text)).process
        else:
            if parse_config(config_text):
                raise StageError(
                    "bad-config", "this stage takes no configuration (it is a plain function)"
                )
            self.process = stage

    def process_batch(self, buf):
        _topic, _partition, records = batch.decode_batch(buf)
        w = batch.ResultWriter(len(records))
        process = self.process
        for r in records:
            try:
                out = process(r)
            except StageError as e:
                w.error(str(e.code), str(e.message))
                continue
            except BaseException as e:
                _report_panic(e, r)
                raise
            if out is None:
                w.ok((), r)
            elif isinstance(out, Record):
                w.ok((out,), r)
            else:
                w.ok(list(out), r)
        return w.finish()


def _report_panic(e, record):
    """An exception other than `StageError` is the stage's bug: it traps the instance (the host
    isolates the record and dead-letters it). Log why first, as the Rust SDK does for a panic."""
    tb = traceback.extract_tb(e.__traceback__)
    where = f"{tb[-1].filename}:{tb[-1].lineno}" if tb else "?"
    try:
        log("error", f"{type(e).__name__}: {e}", panic="true", location=where,
            offset=record.offset)
    except BaseException:
        pass


def enricher(stage):
    """Makes `stage` the component's `weir:stage/enrich` export. Assign the result to `Enrich`
    in the app module: `Enrich = weir.enricher(process)`.

    - A function `process(record)` takes no configuration (a non-empty `config` is refused).
    - A class is built once per instance as `stage(config)`, `config` being the pipeline's
      `config` table as a `dict`; its `process(record)` method is called for every record.
      Raise `StageError("bad-config", ...)` from `__init__` to refuse the configuration.
    """
    base = object
    if IN_WASM:
        from wit_world import exports

        base = exports.Enrich

    class Enrich(base):
        _stage = None

        def batch_format(self):
            return BATCH_FORMAT

        def init(self, config):
            try:
                Enrich._stage = _Stage(stage, config)
            except StageError as e:
                raise _init_error(e.code, e.message) from None
            except Exception as e:
                raise _init_error("init-failed", f"{type(e).__name__}: {e}") from None

        def process(self, buf):
            return Enrich._stage.process_batch(buf)

    Enrich.__qualname__ = Enrich.__name__ = "Enrich"
    Enrich.stage = stage
    return Enrich


def _init_error(code, message):
    if IN_WASM:
        from componentize_py_types import Err
        from wit_world.imports.types import StageError as WitStageError

        return Err(WitStageError(str(code), str(message)))
    return StageError(code, message)
