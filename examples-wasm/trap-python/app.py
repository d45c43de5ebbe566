"""Misbehaving Weir stage in Python: trap, the same stage as `examples-wasm/misbehaving/trap`.

Passes records through unchanged, but raises an exception (not a `StageError`) on a record whose
value contains the bytes `trap_on`. The SDK logs the exception (`panic = "true"`) and lets it trap
the instance: the host must dead-letter that record alone (kind `trap`) and carry on with a fresh
instance.

Config: `{ trap_on = "poison" }` (the default); an empty marker is refused (`bad-config`).
"""

import weir
from weir import StageError


class Trap:
    def __init__(self, config):
        unknown = [k for k in config if k != "trap_on"]
        if unknown:
            raise StageError(
                "bad-config",
                f"invalid stage config: unknown field `{unknown[0]}`, expected `trap_on`",
            )
        marker = config.get("trap_on", "poison")
        if not isinstance(marker, str):
            raise StageError("bad-config", "invalid stage config: `trap_on` must be a string")
        if not marker:
            raise StageError("bad-config", "`trap_on` must not be empty")
        self.marker = marker.encode("utf-8")

    def process(self, record):
        if self.marker in (record.value or b""):
            raise RuntimeError(f"record at offset {record.offset} is poisoned")
        return record


Enrich = weir.enricher(Trap)
