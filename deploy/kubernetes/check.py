#!/usr/bin/env python3
"""Checks deploy/kubernetes: renders every overlay with kustomize, validates what it renders
against the Kubernetes schemas (kubernetes-validate) and the CRDs' schemas (crds.mjs), and checks
that the manifests agree with the weir binary: its flags, its admin routes and port, the
pipeline's drain_timeout, and `weir validate` on the pipeline in the ConfigMap.

Usage: check.py --weir target/debug/weir [--crd-models DIR]   (run by `make k8s-check`)
"""

import argparse
import json
import os
import posixpath
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# The oldest Kubernetes minor still supported upstream when this was written, and the newest the
# pinned kubernetes-validate knows.
K8S_VERSIONS = ["1.31.0", kubernetes_validate.latest_version()]
CRD_KINDS = {"ScaledObject", "ServiceMonitor"}
# weir reads these from the environment; the checks give it only what the manifests give it.
ENV = {k: v for k, v in os.environ.items() if not k.startswith("WEIR_")}

passed, failed = 0, 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {what}")
    else:
        failed += 1
        print(f"FAIL  {what}{': ' + detail if detail else ''}")
    return ok


def renderer():
    """The kustomize command: `kustomize build`, else `kubectl kustomize` (kustomize built in)."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        out = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True)
        if "Kustomize Version: v5" in out.stdout or "Kustomize Version: v4" in out.stdout:
            return ["kubectl", "kustomize"]
    sys.exit("k8s-check: needs kustomize v4+ (`kustomize`, or `kubectl` 1.21+ which has it)")


def duration(text):
    """Seconds in a pipeline duration such as "20s", "500ms" or "1m"."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    return int(m[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m[2]]


def weir_flags(weir):
    """Long flags `weir run` accepts and the variables it reads, from `weir --help` (global) and
    `weir run --help`."""
    text = ""
    for args in (["--help"], ["run", "--help"]):
        text += subprocess.run([weir, *args], env=ENV, capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"(--[a-z][a-z-]*)", text)) | set(re.findall(r"\[env: (WEIR_[A-Z_]+)=", text))


def by_kind(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def probe_port(container, probe):
    port = container[probe]["httpGet"]["port"]
    names = {p["name"]: p["containerPort"] for p in container["ports"]}
    return names.get(port, port)


def pipeline_dir(tmp, text, modules):
    """Lays the ConfigMap's pipeline out as the pod sees it: <tmp>/pipeline/pipeline.toml, with
    the modules it names under <tmp>/modules (copied from pipelines/modules, else empty files)."""
    (tmp / "pipeline").mkdir(parents=True, exist_ok=True)
    (tmp / "modules").mkdir(exist_ok=True)
    path = tmp / "pipeline" / "pipeline.toml"
    path.write_text(text)
    real = True
    for module in modules:
        source = REPO / "pipelines" / "modules" / Path(module).name
        target = tmp / "pipeline" / module
        if source.is_file():
            shutil.copy(source, target)
        else:
            target.touch()
            real = False
    return path, real


def live_routes(weir, args, text, modules, tmp, token, routes):
    """Starts `weir run` with the container's arguments on the ConfigMap's pipeline (listening on
    a free loopback port, brokers unreachable) and asks it the probes' and the monitor's paths."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = re.sub(r'(?m)^listen = "[^"]*"', f'listen = "127.0.0.1:{port}"', text)
    text = re.sub(r'(?m)^brokers = "[^"]*"', 'brokers = "127.0.0.1:9"', text)
    path, _ = pipeline_dir(tmp, text, modules)
    (tmp / "token").write_text(token + "\n")
    local = {"/etc/weir/pipeline/pipeline.toml": str(path),
             "--cache-dir=/var/cache/weir": f"--cache-dir={tmp / 'cache'}",
             "--token-file=/var/run/secrets/weir/token": f"--token-file={tmp / 'token'}"}
    argv = [weir, *(local.get(a, a) for a in args)]
    process = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    answers = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        for route, auth in [(r, False) for r in routes] + [("/admin/canary", True), ("/admin/canary", False)]:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{route}")
            if auth:
                request.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(request, timeout=5) as r:
                    answers[(route, auth)] = (r.status, r.read().decode())
            except urllib.error.HTTPError as e:
                answers[(route, auth)] = (e.code, e.read().decode())
            except OSError as e:
                answers[(route, auth)] = (None, str(e))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return answers


def check_overlay(name, docs, weir, flags, tmp):
    sts = by_kind(docs, "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    weir_c = next(c for c in pod["containers"] if c["name"] == "weir")
    cm = by_kind(docs, "ConfigMap")
    text = cm["data"]["pipeline.toml"]
    pipeline = tomllib.loads(text)
    source, telemetry = pipeline["source"], pipeline.get("telemetry", {})
    mounts = {m["name"]: m for m in weir_c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    labels = pod_labels = sts["spec"]["template"]["metadata"]["labels"]

    # The admin listener: the pipeline's port is the container's, every probe's and the Service's.
    host, _, port = telemetry.get("listen", "127.0.0.1:9464").rpartition(":")
    port = int(port)
    check(host in ("0.0.0.0", "[::]"), f"{name}: [telemetry] listen {host} is reachable from the kubelet")
    check({p["name"]: p["containerPort"] for p in weir_c["ports"]}.get("admin") == port,
          f"{name}: containerPort admin = [telemetry] listen port {port}")
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                        ("startupProbe", "/healthz")]:
        check(weir_c[probe]["httpGet"]["path"] == path and probe_port(weir_c, probe) == port,
              f"{name}: {probe} GET {path} on port {port}")
    svc = by_kind(docs, "Service")
    check(svc["spec"]["selector"].items() <= labels.items()
          and any(p["targetPort"] in ("admin", port) for p in svc["spec"]["ports"])
          and sts["spec"]["serviceName"] == svc["metadata"]["name"],
          f"{name}: Service {svc['metadata']['name']} governs the StatefulSet and targets the admin port")
    sm = by_kind(docs, "ServiceMonitor")
    endpoint = sm["spec"]["endpoints"][0]
    check(endpoint["path"] == "/metrics" and endpoint["port"] in [p["name"] for p in svc["spec"]["ports"]]
          and sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items(),
          f"{name}: ServiceMonitor scrapes /metrics on the Service's admin port")
    netpol = by_kind(docs, "NetworkPolicy")
    check(any(p["port"] == port for rule in netpol["spec"]["ingress"] for p in rule["ports"])
          and netpol["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items(),
          f"{name}: NetworkPolicy admits the admin port {port}")
    pdb = by_kind(docs, "PodDisruptionBudget")
    check(pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(),
          f"{name}: PodDisruptionBudget selects the pods")

    # The container's arguments are flags `weir run` has, on paths the pod mounts.
    args = weir_c["args"]
    check(args[0] == "run", f"{name}: the container runs `weir run`")
    unknown = [a for a in args if a.startswith("--") and a.split("=")[0] not in flags]
    check(not unknown, f"{name}: every flag is one `weir run --help` lists", f"unknown {unknown}")
    pipeline_path = args[1]
    check(posixpath.dirname(pipeline_path) == mounts["pipeline"]["mountPath"]
          and volumes["pipeline"]["configMap"]["name"] == cm["metadata"]["name"]
          and posixpath.basename(pipeline_path) in cm["data"],
          f"{name}: the pipeline argument is the ConfigMap's file")
    opts = dict(a.split("=", 1) for a in args if a.startswith("--") and "=" in a)
    token_file = opts.get("--token-file", "")
    secret = by_kind(docs, "Secret")
    check(posixpath.dirname(token_file) == mounts["admin-token"]["mountPath"]
          and volumes["admin-token"]["secret"]["secretName"] == secret["metadata"]["name"]
          and posixpath.basename(token_file) in secret["data"],
          f"{name}: --token-file is the admin token Secret's key")
    writable = {m["mountPath"] for m in weir_c["volumeMounts"]
                if "emptyDir" in volumes[m["name"]] and not m.get("readOnly")}
    check(opts.get("--cache-dir") in writable, f"{name}: the module cache dir is a writable emptyDir")

    # Static membership: each pod's own name is its group.instance.id, in a variable weir reads.
    env = {e["name"]: e for e in weir_c.get("env", [])}
    instance = env.get("WEIR_INSTANCE_ID", {}).get("valueFrom", {}).get("fieldRef", {})
    check(instance.get("fieldPath") == "metadata.name" and "WEIR_INSTANCE_ID" in flags,
          f"{name}: WEIR_INSTANCE_ID (static membership) is the StatefulSet pod's name")
    unread = [n for n in env if n.startswith("WEIR_") and n not in flags]
    check(not unread, f"{name}: every WEIR_ variable is one `weir run --help` lists", f"unknown {unread}")

    # Modules: every module the pipeline names is in the modules volume the init container fills.
    modules = [s["module"] for s in pipeline["stage"]]
    modules += [s["canary"]["module"] for s in pipeline["stage"] if "canary" in s]
    in_pod = [posixpath.normpath(posixpath.join(mounts["pipeline"]["mountPath"], m)) for m in modules]
    init = pod["initContainers"][0]
    init_mount = next(m["mountPath"] for m in init["volumeMounts"] if m["name"] == "modules")
    check(all(posixpath.dirname(p) == mounts["modules"]["mountPath"] == init_mount for p in in_pod),
          f"{name}: the stage modules are in the modules volume the init container fills")

    # Shutdown: the pod gets more time than the pipeline's drain.
    drain = duration(source.get("drain_timeout", "10s"))
    grace = pod["terminationGracePeriodSeconds"]
    check(grace > drain, f"{name}: terminationGracePeriodSeconds {grace} > drain_timeout {drain:g}s")

    # Security context.
    psc = pod["securityContext"]
    check(psc.get("runAsNonRoot") is True and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
          and pod.get("automountServiceAccountToken") is False,
          f"{name}: pod runs as non-root with RuntimeDefault seccomp, no service account token")
    for c in pod["containers"] + pod["initContainers"]:
        sc = c.get("securityContext", {})
        check(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
              and sc.get("capabilities", {}).get("drop") == ["ALL"] and "resources" in c,
              f"{name}: container {c['name']}: read-only root, no escalation, no capabilities, resources")

    # Autoscaling: the trigger watches the pipeline's group, capped at the partition count.
    so = by_kind(docs, "ScaledObject")
    trigger = so["spec"]["triggers"][0]["metadata"]
    partitions = int(so["metadata"]["annotations"]["weir/source-partitions"])
    check(trigger["consumerGroup"] == source["group"] and trigger["topic"] in source["topics"]
          and trigger["bootstrapServers"] == source["brokers"],
          f"{name}: KEDA trigger watches the pipeline's group, topic and brokers")
    smin, smax = so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]
    check(smin <= sts["spec"]["replicas"] <= smax <= partitions,
          f"{name}: replicas {smin} <= {sts['spec']['replicas']} <= {smax} <= {partitions} partitions")
    check(so["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
          and so["spec"]["scaleTargetRef"]["name"] == sts["metadata"]["name"],
          f"{name}: KEDA scales the StatefulSet")

    # `weir validate` on the ConfigMap's pipeline, laid out as in the pod.
    path, real = pipeline_dir(tmp / "validate", text, modules)
    command = [weir, f"--cache-dir={tmp / 'cache'}", "validate", str(path)]
    out = subprocess.run(command + ([] if real else ["--config-only"]), env=ENV, capture_output=True, text=True)
    check(out.returncode == 0, f"{name}: `weir validate{'' if real else ' --config-only'}` accepts the pipeline",
          out.stderr.strip())

    # The binary serves the probes' and the monitor's paths, and takes the token file.
    if not real:
        print(f"SKIP  {name}: live routes: pipelines/modules/ lacks the modules (run `make wasm`)")
        return
    token = secrets.token_hex(16)
    live, ready = (weir_c[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe"))
    metrics = endpoint["path"]
    answers = live_routes(weir, args, text, modules, tmp / "live", token, [live, ready, metrics])
    status = {k: v[0] for k, v in answers.items()}
    check(status[(live, False)] == 200, f"{name}: weir answers the liveness probe's {live} with 200",
          str(answers[(live, False)]))
    check(status[(ready, False)] in (200, 503) and "not found" not in answers[(ready, False)][1],
          f"{name}: weir serves the readiness probe's {ready} (503 without a broker)", str(answers[(ready, False)]))
    check(status[(metrics, False)] == 200 and "weir_build_info" in answers[(metrics, False)][1],
          f"{name}: weir serves the ServiceMonitor's {metrics}")
    check(status[("/admin/canary", True)] == 200 and status[("/admin/canary", False)] == 401,
          f"{name}: the admin API takes the --token-file token and refuses calls without it",
          str(status))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--weir", required=True, help="the weir binary")
    parser.add_argument("--crd-models", help="npm prefix holding @kubernetes-models/{keda,prometheus-operator}")
    opts = parser.parse_args()
    weir = str(Path(opts.weir).resolve())
    flags = weir_flags(weir)
    render = renderer()
    print(f"rendering with `{' '.join(render)}`; schemas of Kubernetes {', '.join(K8S_VERSIONS)}")
    ignored = subprocess.run(["git", "check-ignore", "-q", "deploy/kubernetes/base/admin-token"], cwd=REPO)
    check(ignored.returncode == 0, "base/admin-token (the admin token) is ignored by git")
    with tempfile.TemporaryDirectory(prefix="weir-k8s-") as tmp:
        tmp = Path(tmp)
        tree = tmp / "kubernetes"
        shutil.copytree(HERE, tree, ignore=shutil.ignore_patterns("admin-token"))
        (tree / "base" / "admin-token").write_text(secrets.token_hex(16) + "\n")
        for overlay in sorted((tree / "overlays").iterdir()):
            name = overlay.name
            out = subprocess.run([*render, str(overlay)], capture_output=True, text=True)
            if not check(out.returncode == 0, f"{name}: kustomize renders the overlay", out.stderr.strip()):
                continue
            docs = [d for d in yaml.safe_load_all(out.stdout) if d]
            crds = []
            for doc in docs:
                what = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
                if doc["kind"] in CRD_KINDS:
                    crds.append(doc)
                    continue
                errors = []
                for version in K8S_VERSIONS:
                    try:
                        kubernetes_validate.validate(doc, version, strict=True)
                    except kubernetes_validate.ValidationError as e:
                        errors.append(f"{version}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
                    except kubernetes_validate.SchemaNotFoundError:
                        errors.append(f"{version}: no schema for {doc['apiVersion']} {doc['kind']}")
                check(not errors, f"{what} (strict Kubernetes schema)", "; ".join(errors))
            if opts.crd_models:
                out = subprocess.run(["node", str(HERE / "crds.mjs"), opts.crd_models],
                                     input=json.dumps(crds), capture_output=True, text=True)
                for line in out.stdout.splitlines():
                    check(line.startswith("ok"), f"{name}: {line[5:]}")
                check(out.returncode == 0, f"{name}: custom resources validated", out.stderr.strip())
            else:
                print(f"SKIP  {name}: {len(crds)} custom resources not schema-checked (no --crd-models)")
            check_overlay(name, docs, weir, flags, tmp / name)
    print(f"k8s-check: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
