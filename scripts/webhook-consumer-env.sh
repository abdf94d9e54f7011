#!/usr/bin/env bash
# Install what the webhook-consumer tests need (tests/webhook-consumer/):
#   - its Node packages (@clerk/backend, pinned in package-lock.json) with `npm ci`,
#     into tests/webhook-consumer/node_modules (git-ignored), again when the lock changes;
#   - a Python environment with the svix library (pinned in requirements.lock.txt),
#     kept outside the checkout and keyed by the lock's hash:
#     ${CUTOVER_CACHE_DIR:-~/.cache/cutover}/svix-venv-<hash>/
# Prints the path of that environment's python on the last line of stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/tests/webhook-consumer"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "webhook-consumer-env: installing nodejs and npm with apt-get" >&2
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; }; } >&2
  fi
fi
command -v node >/dev/null 2>&1 || { echo "webhook-consumer-env: node not found; install Node.js 20.9 or newer (e.g. apt-get install nodejs npm)" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "webhook-consumer-env: npm not found (e.g. apt-get install npm)" >&2; exit 1; }
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=9)?0:1)' \
  || { echo "webhook-consumer-env: @clerk/backend needs Node.js 20.9 or newer; this is $(node --version)" >&2; exit 1; }
stamp="$dir/node_modules/.cutover-lock-$(sha256sum "$dir/package-lock.json" | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "webhook-consumer-env: npm ci in tests/webhook-consumer" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  touch "$stamp"
fi

lock="$dir/requirements.lock.txt"
cache=${CUTOVER_CACHE_DIR:-${HOME:-/tmp}/.cache/cutover}
venv="$cache/svix-venv-$(sha256sum "$lock" | cut -c1-12)"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  python=${PYTHON:-python3}
  command -v "$python" >/dev/null 2>&1 || { echo "webhook-consumer-env: $python not found; install Python 3 with venv" >&2; exit 1; }
  echo "webhook-consumer-env: creating $venv (once; reused afterwards)" >&2
  mkdir -p "$cache"
  rm -rf "$venv"
  "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$lock" >&2
  "$venv/bin/python" -c 'import svix.webhooks' >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
