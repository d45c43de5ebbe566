// Misbehaving Weir stage in JavaScript: trap, the same stage as `examples-wasm/misbehaving/trap`.
//
// Passes records through unchanged, but throws an exception (not a `StageError`) on a record
// whose value contains the bytes `trap_on`. The SDK logs the exception (`panic = "true"`) and lets
// it trap the instance: the host must dead-letter that record alone (kind `trap`) and carry on
// with a fresh instance.
//
// Config: `{ trap_on = "poison" }` (the default); an empty marker is refused (`bad-config`).
import { StageError, enricher } from "../../sdk/js/weir.js";

const EMPTY = new Uint8Array(0);

function contains(haystack, needle) {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

class Trap {
  constructor(config) {
    const unknown = Object.keys(config).filter((k) => k !== "trap_on");
    if (unknown.length) {
      throw new StageError(
        "bad-config",
        `invalid stage config: unknown field \`${unknown[0]}\`, expected \`trap_on\``,
      );
    }
    const marker = config.trap_on ?? "poison";
    if (typeof marker !== "string") {
      throw new StageError("bad-config", "invalid stage config: `trap_on` must be a string");
    }
    if (marker === "") throw new StageError("bad-config", "`trap_on` must not be empty");
    this.marker = new TextEncoder().encode(marker);
  }

  process(record) {
    const value = typeof record.value === "string" ? new TextEncoder().encode(record.value) : record.value ?? EMPTY;
    if (contains(value, this.marker)) {
      throw new Error(`record at offset ${record.offset} is poisoned`);
    }
    return record;
  }
}

export const enrich = enricher(Trap);
