// The Weir SDK as a component's entry module imports it: `core.js` connected to the host's
// `weir:stage/host` imports (logs and metrics). Import `core.js` instead from modules that must
// also load on Node.js, such as a stage's logic under test.
import * as host from "weir:stage/host@0.1.0";
import { setHost } from "./core.js";

setHost(host);

export * from "./core.js";
