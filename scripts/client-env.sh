#!/usr/bin/env bash
# Install the Better Auth JS client that the integration tests drive
# (tests/client: the real `better-auth` package, version pinned in package.json,
# every transitive version pinned in package-lock.json).
#
# `npm ci` installs exactly the lock file into tests/client/node_modules (git-ignored).
# A stamp holding the lock file's hash makes later runs free until the pins change.
# Fails loudly when Node.js or npm is missing: the client tests never skip.
# Prints the path of node on the last line of stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/tests/client"

node=${NODE:-node}
if ! command -v "$node" >/dev/null 2>&1; then
  echo "client-env: Node.js not found; the Better Auth client tests need Node.js 18 or newer and npm (e.g. apt-get install nodejs npm, or https://nodejs.org)" >&2
  exit 1
fi
major=$("$node" -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "client-env: the Better Auth client needs Node.js 18 or newer; $node is $("$node" --version)" >&2
  exit 1
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "client-env: npm not found; install it with Node.js (e.g. apt-get install npm)" >&2
  exit 1
fi

stamp="$dir/node_modules/.cutover-lock-hash"
hash=$(sha256sum "$dir/package-lock.json" | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
  echo "client-env: installing tests/client (npm ci; once per lock file)" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts >&2)
  # Check the install imports before marking it complete.
  (cd "$dir" && "$node" -e 'await import("better-auth/client"); await import("better-auth/client/plugins");' --input-type=module >&2)
  echo "$hash" >"$stamp"
fi
command -v "$node"
