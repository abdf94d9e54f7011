#!/usr/bin/env bash
# The local stack on embedded defaults: the sample Kernia 0.1.0 app on SQLite
# (.dev/kernia.db) at 127.0.0.1:3001, and cutover in front of it with
# config/dev.toml (in-process state) on https://localhost:8443 and
# http://127.0.0.1:8080. Ctrl-C stops both.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

command -v cargo >/dev/null 2>&1 || { echo "dev: cargo not found; install Rust (https://rustup.rs)" >&2; exit 1; }
python=$(scripts/kernia-env.sh | tail -n 1)

cargo build --quiet
cutover="$root/target/debug/cutover"
[ -f certs/dev.crt ] || "$cutover" dev-cert --dir certs --name dev

mkdir -p .dev
# The same secret and database as config/dev.toml.
export KERNIA_SECRET="cutover-dev-secret-not-for-production"
export KERNIA_DATABASE_URL="sqlite://$root/.dev/kernia.db"
export KERNIA_PORT=3001
export KERNIA_BASE_URL="http://127.0.0.1:8080"
export KERNIA_TRUSTED_ORIGINS="http://localhost:8080,https://localhost:8443,https://127.0.0.1:8443"
"$python" deploy/kernia-app/app.py > .dev/kernia-app.out 2> .dev/kernia-app.log &
kernia_pid=$!
trap 'kill $kernia_pid 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 1 60); do
  grep -q "listening" .dev/kernia-app.out 2>/dev/null && break
  kill -0 $kernia_pid 2>/dev/null || { echo "dev: the Kernia app failed to start:" >&2; cat .dev/kernia-app.log >&2; exit 1; }
  sleep 0.5
done
echo "dev: $(cat .dev/kernia-app.out) (log: .dev/kernia-app.log)" >&2
# The admin listener's token (config/dev.toml: [admin] token_env).
export CUTOVER_ADMIN_TOKEN="${CUTOVER_ADMIN_TOKEN:-dev-admin-token-not-for-production}"
echo "dev: cutover on https://localhost:8443 and http://127.0.0.1:8080 — try: curl -sk https://localhost:8443/whoami" >&2
echo "dev: dashboard on http://127.0.0.1:9901/ (any user name; password: \$CUTOVER_ADMIN_TOKEN = $CUTOVER_ADMIN_TOKEN)" >&2
"$cutover" serve -c config/dev.toml
