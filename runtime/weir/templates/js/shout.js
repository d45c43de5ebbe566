// {{name}}: upper-cases each record's value and appends the configured `suffix`.
//
// Config: `{ suffix = "!" }` (the default). Errors: `empty-value` (a null or empty value),
// `bad-utf8` (a value that is not text).
import { StageError } from "./weir/core.js";

export class Stage {
  // `config` is the `config` table of the stage's entry in `pipeline.toml`, as an object.
  constructor(config) {
    const unknown = Object.keys(config).filter((k) => k !== "suffix");
    if (unknown.length) throw new StageError("bad-config", `unknown config key \`${unknown[0]}\``);
    this.suffix = String(config.suffix ?? "!");
  }

  process(record) {
    if (record.value === null || record.value.length === 0) {
      throw new StageError("empty-value", "there is nothing to shout");
    }
    record.value = record.valueString().toUpperCase() + this.suffix;
    return record;
  }
}
