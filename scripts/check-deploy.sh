#!/usr/bin/env bash
# Offline checks of the deployment files (run by scripts/test.sh):
#   - deploy/kubernetes: rendered with `kubectl kustomize` when kubectl is installed,
#     and in any case every manifest the kustomization lists, validated against the
#     Kubernetes schemas by kubernetes-validate (--strict), plus the checks in
#     scripts/check_deploy.py (replicas, probes on the admin port, resources,
#     secret references, PDB/HPA/Service selectors, the ConfigMap's TOML);
#   - a deliberately broken Deployment must fail validation (the validator works);
#   - deploy/compose.yaml and the Dockerfile: parsed and cross-checked.
# The validator's Python environment is created once, pinned, under
# ${CUTOVER_CACHE_DIR:-~/.cache/cutover}/deploy-venv-<hash>.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

reqs=scripts/deploy-check-requirements.txt
cache=${CUTOVER_CACHE_DIR:-${HOME:-/tmp}/.cache/cutover}
venv="$cache/deploy-venv-$(sha256sum "$reqs" | cut -c1-12)"
if ! [ -f "$venv/.complete" ]; then
  echo "check-deploy: creating $venv (once)" >&2
  rm -rf "$venv"
  ${PYTHON:-python3} -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$reqs"
  touch "$venv/.complete"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if command -v kubectl >/dev/null 2>&1; then
  echo "== kubectl kustomize deploy/kubernetes"
  kubectl kustomize deploy/kubernetes > "$work/rendered.yaml"
  "$venv/bin/kubernetes-validate" --strict --quiet "$work/rendered.yaml"
  rendered="$work/rendered.yaml"
else
  echo "== kubectl not installed: validating each listed manifest instead of the rendered base"
  rendered=""
fi

echo "== deploy/kubernetes manifests, one by one (kubernetes-validate --strict)"
manifests=$("$venv/bin/python" scripts/check_deploy.py list-resources deploy/kubernetes)
# shellcheck disable=SC2086 # one path per word
"$venv/bin/kubernetes-validate" --strict --quiet $manifests

echo "== a broken Deployment must fail validation"
"$venv/bin/python" scripts/check_deploy.py break deploy/kubernetes/deployment.yaml > "$work/broken.yaml"
if "$venv/bin/kubernetes-validate" --strict --quiet "$work/broken.yaml" >/dev/null 2>&1; then
  echo "check-deploy: kubernetes-validate accepted a broken Deployment; the check is not working" >&2
  exit 1
fi

echo "== deploy/kubernetes, deploy/compose.yaml, Dockerfile: structure"
"$venv/bin/python" scripts/check_deploy.py check ${rendered:+--rendered "$rendered"}
echo "check-deploy: all deployment files pass"
