#!/usr/bin/env bash
# The whole test suite, against real parts: the Kernia 0.1.0 server, PostgreSQL,
# SQLite and Redis, the real Better Auth JS client and headless Chromium. Prepares what is missing
# first (services, the Kernia Python environment, the client's Node packages,
# Chromium),
# then runs every test. Extra arguments go to `cargo test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

command -v cargo >/dev/null 2>&1 || { echo "test: cargo not found; install Rust (https://rustup.rs)" >&2; exit 1; }

scripts/services.sh
python=$(scripts/kernia-env.sh | tail -n 1)
export CUTOVER_KERNIA_PYTHON="$python"
# The Better Auth JS client (Node.js + the pinned better-auth package) for the
# client tests; fails here, loudly, when Node.js or npm is missing.
node=$(scripts/client-env.sh | tail -n 1)
export CUTOVER_NODE="$node"

# The deployment files (Kubernetes manifests, compose file, Dockerfile), offline.
scripts/check-deploy.sh
# Headless Chromium for the dashboard test (installs Debian's package when missing).
chromium=$(scripts/browser-env.sh | tail -n 1)
export CUTOVER_CHROMIUM="$chromium"
# The webhook consumer (Node + @clerk/backend) and the Python svix library.
CUTOVER_SVIX_PYTHON=$(scripts/webhook-consumer-env.sh | tail -n 1)
export CUTOVER_SVIX_PYTHON

# Two cores: keep the number of test threads (each may run a Kernia server) small.
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-4}
cargo test --all-targets "$@"
