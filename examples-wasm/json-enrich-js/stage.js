// The component's entry module: exports json-enrich (`enrich.js`) as `weir:stage/enrich`.
import { enricher } from "../../sdk/js/weir.js";
import { JsonEnrich } from "./enrich.js";

export const enrich = enricher(JsonEnrich);
