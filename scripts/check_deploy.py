#!/usr/bin/env python3
"""Structure checks of the deployment files, for scripts/check-deploy.sh (which
runs this in its pinned environment: PyYAML; tomllib is in the standard library).

    check_deploy.py list-resources DIR    the manifests DIR/kustomization.yaml lists
    check_deploy.py break FILE            FILE with a schema error (a negative control)
    check_deploy.py check [--rendered F]  every check below; exit 1 listing every problem

Kubernetes (deploy/kubernetes, and the kustomize output when given):
  - every resource and generator file the kustomization lists exists, and every
    YAML file in the directory is listed (nothing silently left out);
  - the Deployment: at least 2 replicas; readiness on /readyz and liveness on
    /healthz, both on the container port named `admin`, which is the port of
    `[admin] listen` in the ConfigMap's TOML; CPU and memory requests and a memory
    limit; non-root, no privilege escalation, read-only root filesystem; every
    environment variable that carries a secret comes from a secretKeyRef;
  - the ConfigMap's TOML parses, and holds no inline secret (only *_env names);
    each *_env it names is set in the Deployment;
  - the Service, PodDisruptionBudget and HPA select or target the Deployment;
    the HPA's minReplicas >= 2; the PDB leaves at least one copy.
Compose (deploy/compose.yaml):
  - parses; services PostgreSQL, Redis, the Kernia app, the legacy app and two
    cutover copies exist; every depends_on names a service, with healthchecks
    where service_healthy is asked; every named volume is declared; every bind
    mount's source exists; every build target exists in the Dockerfile; no host
    port is published twice; the cutover configuration it mounts parses and holds
    no inline secret, and each *_env it names is set.
Dockerfile: multi-stage with a `runtime` stage that runs as a non-root user and
copies only the binary from the build stage.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
import tomllib

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "DATABASE_URL", "REDIS_URL", "SMTP_URL", "KEY")
INLINE_SECRET_KEYS = {"secret", "database_url", "redis_url", "secret_key", "url", "jwt_key"}

problems: list[str] = []


def problem(where: str, what: str) -> None:
    problems.append(f"{where}: {what}")


def load_all(path: str) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def kustomization(d: str) -> dict:
    with open(os.path.join(d, "kustomization.yaml")) as f:
        return yaml.safe_load(f)


def list_resources(d: str) -> list[str]:
    return [os.path.join(d, r) for r in kustomization(d).get("resources", [])]


def toml_secrets(where: str, cfg: dict, prefix: str = "") -> list[str]:
    """Reports inline secrets; returns the environment variables *_env keys name."""
    envs = []
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            envs += toml_secrets(where, value, path + ".")
        elif key.endswith("_env") and isinstance(value, str):
            envs.append(value)
        elif key in INLINE_SECRET_KEYS and isinstance(value, str) and not path.startswith(
            ("upstreams.", "clerk.jwks", "reset.link")
        ):
            problem(where, f"`{path}` holds a secret inline; name an environment variable ({key}_env)")
    return envs


def admin_port(where: str, cfg: dict) -> int | None:
    listen = cfg.get("admin", {}).get("listen")
    if not listen:
        problem(where, "no [admin] listen: the probes have nothing to ask")
        return None
    return int(listen.rsplit(":", 1)[1])


def check_kubernetes(d: str, rendered: str | None) -> None:
    k = kustomization(d)
    where = os.path.relpath(os.path.join(d, "kustomization.yaml"), ROOT)
    listed = set(k.get("resources", []))
    for r in listed:
        if not os.path.exists(os.path.join(d, r)):
            problem(where, f"lists {r}, which does not exist")
    gen_files = [f.split("=")[-1] for g in k.get("configMapGenerator", []) for f in g.get("files", [])]
    for f in gen_files:
        if not os.path.exists(os.path.join(d, f)):
            problem(where, f"configMapGenerator file {f} does not exist")
    for f in sorted(os.listdir(d)):
        if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml" and f not in listed:
            problem(where, f"{f} is in the directory but not in resources")

    docs = []
    for r in sorted(listed):
        docs += load_all(os.path.join(d, r))
    if rendered:
        # The rendered output must hold the same kinds, plus the generated ConfigMap.
        kinds = sorted(x["kind"] for x in load_all(rendered))
        want = sorted([x["kind"] for x in docs] + ["ConfigMap"] * len(k.get("configMapGenerator", [])))
        if kinds != want:
            problem(rendered, f"kustomize rendered {kinds}, expected {want}")
    by_kind: dict[str, list[dict]] = {}
    for x in docs:
        by_kind.setdefault(x["kind"], []).append(x)

    deps = by_kind.get("Deployment", [])
    if len(deps) != 1:
        problem(where, f"expected one Deployment, found {len(deps)}")
        return
    dep = deps[0]
    dwhere = f"Deployment/{dep['metadata']['name']}"
    name = dep["metadata"]["name"]
    if dep["spec"].get("replicas", 1) < 2:
        problem(dwhere, "fewer than 2 replicas")
    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"].get("labels", {})
    if dep["spec"]["selector"].get("matchLabels") != {
        k: v for k, v in pod_labels.items() if k in dep["spec"]["selector"].get("matchLabels", {})
    }:
        problem(dwhere, "selector does not match the pod labels")
    spec = pod["spec"]
    sc = spec.get("securityContext", {})
    if not sc.get("runAsNonRoot") or sc.get("runAsUser", 0) == 0:
        problem(dwhere, "pods must run as a non-root user")
    (c,) = spec["containers"]
    csc = c.get("securityContext", {})
    if csc.get("allowPrivilegeEscalation") is not False or not csc.get("readOnlyRootFilesystem"):
        problem(dwhere, "container must forbid privilege escalation and use a read-only root")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") != "admin":
            problem(dwhere, f"{probe} must be GET {path} on the port named admin")
    res = c.get("resources", {})
    for kind in ("cpu", "memory"):
        if kind not in res.get("requests", {}):
            problem(dwhere, f"no {kind} request")
    if "memory" not in res.get("limits", {}):
        problem(dwhere, "no memory limit")
    env = {e["name"]: e for e in c.get("env", [])}
    for n, e in env.items():
        if any(w in n for w in SECRET_WORDS) and "secretKeyRef" not in e.get("valueFrom", {}):
            problem(dwhere, f"env {n} looks secret but is not from a secretKeyRef")

    # The ConfigMap's TOML.
    for g in k.get("configMapGenerator", []):
        for f in g.get("files", []):
            path = os.path.join(d, f.split("=")[-1])
            twhere = os.path.relpath(path, ROOT)
            with open(path, "rb") as fh:
                cfg = tomllib.load(fh)
            for var in toml_secrets(twhere, cfg):
                if var not in env:
                    problem(twhere, f"names ${var}, which the Deployment does not set")
            port = admin_port(twhere, cfg)
            if port is not None and ports.get("admin") != port:
                problem(dwhere, f"containerPort admin is {ports.get('admin')}, [admin] listens on {port}")
            mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
            cfg_args = " ".join(c.get("args", []))
            if f"{mounts.get('config', '?')}/{f.split('=')[0]}" not in cfg_args:
                problem(dwhere, f"args {cfg_args!r} do not name the mounted {f}")

    for svc in by_kind.get("Service", []):
        sel = svc["spec"].get("selector", {})
        if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
            problem(f"Service/{svc['metadata']['name']}", "selector does not match the pods")
        for p in svc["spec"]["ports"]:
            if isinstance(p.get("targetPort"), str) and p["targetPort"] not in ports:
                problem(f"Service/{svc['metadata']['name']}", f"targetPort {p['targetPort']} is not a container port")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        sel = pdb["spec"]["selector"].get("matchLabels", {})
        if any(pod_labels.get(k) != v for k, v in sel.items()):
            problem("PodDisruptionBudget", "selector does not match the pods")
        if pdb["spec"].get("minAvailable", 0) < 1 and "maxUnavailable" not in pdb["spec"]:
            problem("PodDisruptionBudget", "must keep at least one copy")
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    if not hpas:
        problem(where, "no HorizontalPodAutoscaler")
    for h in hpas:
        ref = h["spec"]["scaleTargetRef"]
        if ref.get("kind") != "Deployment" or ref.get("name") != name:
            problem("HorizontalPodAutoscaler", f"targets {ref}, not Deployment/{name}")
        if h["spec"].get("minReplicas", 1) < 2:
            problem("HorizontalPodAutoscaler", "minReplicas below 2")
    for kind in ("Service", "PodDisruptionBudget"):
        if kind not in by_kind:
            problem(where, f"no {kind}")


def dockerfile_stages(path: str) -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = None
    with open(path) as f:
        for line in f:
            m = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line.strip(), re.I)
            if m:
                current = m.group(1) or f"stage{len(stages)}"
                stages[current] = []
            elif current and line.strip() and not line.startswith("#"):
                stages[current].append(line.strip())
    return stages


def check_dockerfile(path: str) -> dict[str, list[str]]:
    where = os.path.relpath(path, ROOT)
    stages = dockerfile_stages(path)
    if len(stages) < 2 or "runtime" not in stages or list(stages)[-1] != "runtime":
        problem(where, f"expected a multi-stage build ending in `runtime`, found {list(stages)}")
        return stages
    rt = stages["runtime"]
    users = [s.split()[1] for s in rt if s.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        problem(where, "the runtime stage must run as a non-root USER")
    copies = [s for s in rt if s.upper().startswith("COPY")]
    if len(copies) != 1 or "--from=build" not in copies[0] or "cutover" not in copies[0]:
        problem(where, f"the runtime stage must copy only the binary from build, not {copies}")
    return stages


def check_compose(path: str, stages: dict[str, list[str]]) -> None:
    where = os.path.relpath(path, ROOT)
    base = os.path.dirname(path)
    with open(path) as f:
        doc = yaml.safe_load(f)  # resolves the x-* anchors and merge keys
    services = doc.get("services", {})
    volumes = set((doc.get("volumes") or {}).keys())
    images = [s.get("image", "") for s in services.values()]
    if not any(i.startswith("postgres") for i in images):
        problem(where, "no PostgreSQL service")
    if not any(i.startswith("redis") for i in images):
        problem(where, "no Redis service")
    for want in ("kernia-app", "legacy-app"):
        if want not in services:
            problem(where, f"no {want} service")
    cutovers = [n for n, s in services.items() if "serve" in (s.get("command") or [])]
    if len(cutovers) < 2:
        problem(where, f"expected two cutover copies, found {cutovers}")
    published = {}
    for name, svc in services.items():
        swhere = f"{where} services.{name}"
        if "image" not in svc and "build" not in svc:
            problem(swhere, "neither image nor build")
        build = svc.get("build")
        if isinstance(build, dict):
            target = build.get("target")
            dockerfile = os.path.normpath(os.path.join(base, build.get("context", "."),
                                                       build.get("dockerfile", "Dockerfile")))
            if not os.path.exists(dockerfile):
                problem(swhere, f"build dockerfile {dockerfile} does not exist")
            elif target and target not in stages:
                problem(swhere, f"build target {target} is not a stage of the Dockerfile")
        deps = svc.get("depends_on") or {}
        for dep, cond in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            if dep not in services:
                problem(swhere, f"depends on {dep}, which is not a service")
            elif cond.get("condition") == "service_healthy" and "healthcheck" not in services[dep]:
                problem(swhere, f"waits for {dep} to be healthy, but {dep} has no healthcheck")
        for v in svc.get("volumes") or []:
            src = v.split(":")[0]
            if src.startswith((".", "/")):
                if not os.path.exists(os.path.join(base, src)):
                    problem(swhere, f"mounts {src}, which does not exist")
                elif src.endswith(".toml"):
                    with open(os.path.join(base, src), "rb") as fh:
                        cfg = tomllib.load(fh)
                    envs = toml_secrets(os.path.relpath(os.path.join(base, src), ROOT), cfg)
                    env = svc.get("environment") or {}
                    for var in envs:
                        if var not in env:
                            problem(swhere, f"its configuration names ${var}, which it does not set")
            elif src not in volumes:
                problem(swhere, f"volume {src} is not declared")
        for p in svc.get("ports") or []:
            host = ":".join(str(p).split(":")[:-1])
            if host in published:
                problem(swhere, f"host port {host} is also published by {published[host]}")
            published[host] = name


def break_manifest(path: str) -> None:
    docs = load_all(path)
    broken = copy.deepcopy(docs[0])
    broken["spec"]["replicas"] = "two"  # a string where an integer belongs
    broken["spec"]["template"]["spec"]["containers"][0]["unknownField"] = True
    yaml.safe_dump(broken, sys.stdout)


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list-resources").add_argument("dir")
    sub.add_parser("break").add_argument("file")
    c = sub.add_parser("check")
    c.add_argument("--rendered")
    args = ap.parse_args()
    if args.cmd == "list-resources":
        print("\n".join(list_resources(args.dir)))
        return 0
    if args.cmd == "break":
        break_manifest(args.file)
        return 0
    check_kubernetes(os.path.join(ROOT, "deploy/kubernetes"), args.rendered)
    stages = check_dockerfile(os.path.join(ROOT, "Dockerfile"))
    check_compose(os.path.join(ROOT, "deploy/compose.yaml"), stages)
    for p in problems:
        print(f"check-deploy: {p}", file=sys.stderr)
    if problems:
        return 1
    print("checked: deploy/kubernetes (kustomization, Deployment, Services, PDB, HPA, ConfigMap TOML), "
          "deploy/compose.yaml, Dockerfile")
    return 0


if __name__ == "__main__":
    sys.exit(main())
