// Run a stage on Node.js through the same batch encoding as the host:
//
//     import { Record } from "../sdk/js/core.js";
//     import { run } from "../sdk/js/testing.js";
//
//     const out = run(MyStage, { field: "url" }, [new Record('{"url":"https://a.example/"}')]);
//     // one array of output records, or one StageError, per input
import { Record, decodeBatch, decodeResult, enricher, encodeBatch } from "./core.js";

/** One instance of a stage, as the host makes it: `init` once, then `process` batches. */
export class Harness {
  /** `config` is an object or JSON text. Throws the `StageError` of a refused configuration. */
  constructor(stage, config = {}) {
    this.exported = enricher(stage);
    this.exported.init(typeof config === "string" ? config : JSON.stringify(config));
  }

  /** Runs `records` (`Record`s, or values as strings or bytes) as one batch. */
  process(records) {
    const inputs = records.map((r, i) => {
      const rec = r instanceof Record ? r : new Record(r);
      if (rec.offset === null) rec.offset = i;
      return rec;
    });
    const buf = encodeBatch(inputs);
    const decoded = decodeBatch(buf).records;
    return decodeResult(this.exported.process(buf), decoded);
  }
}

/** `new Harness(stage, config).process(records)`. */
export function run(stage, config, records) {
  return new Harness(stage, config).process(records);
}
