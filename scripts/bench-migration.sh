#!/usr/bin/env bash
# The sign-in storm: N pending users (bcrypt cost 10, as Clerk writes) sign in
# through cutover at once, against the real Kernia app on PostgreSQL, while
# ordinary requests keep flowing to a trivial upstream (nginx `return 200`).
# Prints the machine's hashing limit, migrations per second, and the ordinary
# requests' latency at idle and during the storm. Record in docs/BENCHMARKS.md.
#
# Usage: scripts/bench-migration.sh [users] [sign-in concurrency]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/bench-lib.sh
users=${1:-300}
concurrency=${2:-8}
bench_need nginx-light nginx
scripts/services.sh
cargo build --release --quiet --bin cutover --example bench_storm
bin=$(bench_release_dir)
python=$(scripts/kernia-env.sh | tail -n 1)
work=$(mktemp -d)
db="cutover_bench_$$"
admin=${CUTOVER_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
base=${admin%/*}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  psql "$admin" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

psql "$admin" -q -c "CREATE DATABASE $db" >/dev/null
up=$(free_port); cut=$(free_port)
bench_upstream nginx "$up"

secret="bench-secret-0123456789abcdef-xyz"
# CUTOVER_BENCH_KERNIA_NICE=N runs the Kernia app at niceness N, as if it had a
# machine of its own (in production it usually does); default: same priority.
KERNIA_DATABASE_URL="$base/$db" KERNIA_SECRET="$secret" KERNIA_PORT=0 KERNIA_RATE_LIMIT=off \
  nice -n "${CUTOVER_BENCH_KERNIA_NICE:-0}" "$python" deploy/kernia-app/app.py > "$work/kernia.out" 2> "$work/kernia.log" & pids+=($!)
for _ in $(seq 1 200); do grep -q listening "$work/kernia.out" 2>/dev/null && break; sleep 0.1; done
kaddr=$(sed -n 's/.*listening on //p' "$work/kernia.out")
[ -n "$kaddr" ] || { cat "$work/kernia.log" >&2; exit 1; }
wait_port $up 200

"$bin/examples/bench_storm" seed "$base/$db" "$users"
cat > "$work/cutover.toml" <<TOML
[server]
plain_listen = "127.0.0.1:$cut"
[upstreams]
legacy = "http://127.0.0.1:$up"
kernia = "http://$kaddr"
[kernia]
secret = "$secret"
database_url = "$base/$db"
[migration]
# Every sign-in comes from 127.0.0.1 here.
ip_attempts = 1000000
[log]
level = "warn"
TOML
"$bin/cutover" serve -c "$work/cutover.toml" & pids+=($!)
wait_port $cut 200

echo "== $(nproc) cores; $(date -u +%FT%TZ); $users users, $concurrency concurrent sign-ins"
"$bin/examples/bench_storm" cost
"$bin/examples/bench_storm" run "http://127.0.0.1:$cut" "$users" "$concurrency"
