// Validates custom resources (KEDA ScaledObject, Prometheus Operator ServiceMonitor) against the
// schemas generated from their CRDs (npm @kubernetes-models/*). Reads a JSON array of objects on
// stdin; prints one line per object; exits 1 when one is invalid or of an unknown kind.
// Usage: node crds.mjs NPM_PREFIX < objects.json
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const models = {
  "keda.sh/v1alpha1/ScaledObject": "keda/keda.sh/v1alpha1/ScaledObject.js",
  "monitoring.coreos.com/v1/ServiceMonitor":
    "prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js",
};
const root = join(process.argv[2], "node_modules", "@kubernetes-models");
let failed = 0;
for (const object of JSON.parse(readFileSync(0, "utf8"))) {
  const key = `${object.apiVersion}/${object.kind}`;
  const name = `${object.kind}/${object.metadata?.name}`;
  if (!models[key]) {
    console.log(`FAIL ${name}: no schema for ${key}`);
    failed++;
    continue;
  }
  const module = await import(pathToFileURL(join(root, models[key])).href);
  try {
    new module[object.kind](object).validate();
    console.log(`ok   ${name} (${key}, CRD schema)`);
  } catch (error) {
    console.log(`FAIL ${name}: ${error.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
