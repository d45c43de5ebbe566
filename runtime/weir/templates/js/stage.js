// The component's entry module: exports the stage (shout.js) as `weir:stage/enrich`.
import { enricher } from "./weir/weir.js";
import { Stage } from "./shout.js";

export const enrich = enricher(Stage);
