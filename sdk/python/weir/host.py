"""Logging and metrics through the host; on a plain Python, logs go to stderr, metrics nowhere."""

import sys

try:  # Inside the component: the generated bindings of `weir:stage/host`.
    from wit_world.imports import host as _host
    from wit_world.imports.types import Level as _Level

    _LEVELS = {
        "trace": _Level.TRACE,
        "debug": _Level.DEBUG,
        "info": _Level.INFO,
        "warn": _Level.WARN,
        "error": _Level.ERROR,
    }

    def log(level, message, **fields):
        """Writes a log line at `level` (`"trace"`, `"debug"`, `"info"`, `"warn"`, `"error"`)
        with `fields` as key/value pairs. It lands in the runtime's structured logs with the
        stage, partition and offsets of the batch."""
        _host.log(_LEVELS[level], str(message), [(str(k), str(v)) for k, v in fields.items()])

    def counter_add(name, delta=1):
        """Adds `delta` to the stage's counter `name` (lower case, digits and `_`)."""
        _host.counter_add(name, delta)

    def histogram_record(name, value):
        """Records `value` in the stage's histogram `name`."""
        _host.histogram_record(name, float(value))

    IN_WASM = True
except ImportError:
    IN_WASM = False

    def log(level, message, **fields):
        extra = "".join(f" {k}={v!r}" for k, v in fields.items())
        print(f"[{level}] {message}{extra}", file=sys.stderr)

    def counter_add(name, delta=1):
        pass

    def histogram_record(name, value):
        pass
