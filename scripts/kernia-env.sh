#!/usr/bin/env bash
# Create (or reuse) the Python environment of the sample Kernia 0.1.0 app.
#
# The environment lives outside the checkout, keyed by the hash of the pinned
# lock file, so every clone and every run reuse it until the pins change:
#   ${CUTOVER_CACHE_DIR:-~/.cache/cutover}/kernia-venv-<hash>/
# Prints the path of its python on the last line of stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lock="$root/deploy/kernia-app/requirements.lock.txt"
cache=${CUTOVER_CACHE_DIR:-${HOME:-/tmp}/.cache/cutover}
hash=$(sha256sum "$lock" | cut -c1-12)
venv="$cache/kernia-venv-$hash"

if [ -x "$venv/bin/python" ] && [ -f "$venv/.complete" ]; then
  echo "$venv/bin/python"
  exit 0
fi

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "kernia-env: $python not found; install Python 3.11 or newer (e.g. apt-get install python3 python3-venv)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "kernia-env: Kernia 0.1.0 needs Python 3.11 or newer; $python is $("$python" --version 2>&1)" >&2
  exit 1
fi

echo "kernia-env: creating $venv (once; reused afterwards)" >&2
mkdir -p "$cache"
# A half-made environment (an interrupted earlier run) has no .complete marker.
rm -rf "$venv"
"$python" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$lock" >&2
# Check the install imports before marking it complete.
"$venv/bin/python" -c 'import kernia, kernia_fastapi, kernia_sqlalchemy, uvicorn, asyncpg, pyotp, svix' >&2
touch "$venv/.complete"
echo "$venv/bin/python"
