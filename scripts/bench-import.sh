#!/usr/bin/env bash
# `cutover import` throughput and peak memory, on PostgreSQL and/or SQLite.
# Generates a synthetic Clerk export (examples/gen_clerk_export.rs) once per
# size, creates a fresh database holding Kernia 0.1.0's schema (the DDL the
# sample Kernia app creates, tests/fixtures/import/), runs the import under
# /usr/bin/time -v and prints users/s and the peak RSS. Record results in
# docs/BENCHMARKS.md ("Import").
#
# Usage: scripts/bench-import.sh <postgres|sqlite> <users> [extra import flags…]
# Env:   BENCH_DIR (default /tmp/cutover-bench), PG_ADMIN_URL
#        (default postgres://postgres@127.0.0.1:5432/postgres),
#        CUTOVER_BENCH_BIN (a cutover binary to measure instead of building this
#        checkout's; the export generator is then built only when an export of
#        that size is missing)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
engine=${1:?postgres or sqlite}
users=${2:?number of users}
shift 2
bench=${BENCH_DIR:-/tmp/cutover-bench}
admin=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
target=${CARGO_TARGET_DIR:-$root/target}

bin=${CUTOVER_BENCH_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet --bin cutover --example gen_clerk_export
  bin="$target/release/cutover"
fi
export_dir="$bench/export-$users"
if [ ! -f "$export_dir/invitations.json" ]; then
  rm -rf "$export_dir"
  [ -x "$target/release/examples/gen_clerk_export" ] ||
    cargo build --release --quiet --example gen_clerk_export
  "$target/release/examples/gen_clerk_export" "$users" "$export_dir" >/dev/null
fi
users_json=$(ls "$export_dir"/users-*.json)

case "$engine" in
  postgres)
    db="cutover_bench_$users"
    psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    url="${admin%/*}/$db"
    psql -q "$url" -f tests/fixtures/import/kernia_schema.pg.sql >/dev/null
    ;;
  sqlite)
    rm -f "$bench/kernia-$users.db"*
    sqlite3 "$bench/kernia-$users.db" < tests/fixtures/import/kernia_schema.sqlite.sql
    url="sqlite://$bench/kernia-$users.db"
    ;;
  *) echo "bench-import: engine must be postgres or sqlite" >&2; exit 2 ;;
esac

config="$bench/cutover-bench.toml"
cat > "$config" <<TOML
[server]
plain_listen = "127.0.0.1:0"
[upstreams]
legacy = "http://127.0.0.1:3000"
kernia = "http://127.0.0.1:3001"
[kernia]
secret = "cutover-bench-secret-0123456789"
database_url = "$url"
[log]
level = "warn"
TOML

# shellcheck disable=SC2086
/usr/bin/time -v "$bin" import -c "$config" --progress plain \
  --csv "$export_dir/users.csv" --users $users_json \
  --organizations "$export_dir/organizations.json" --memberships "$export_dir/memberships.json" \
  --invitations "$export_dir/invitations.json" --work-dir "$bench" "$@" \
  > "$bench/summary.txt" 2> "$bench/time.txt" || { cat "$bench/time.txt" "$bench/summary.txt"; exit 1; }
cat "$bench/summary.txt"
secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$bench/time.txt")
rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$bench/time.txt")
cpu=$(awk -F': ' '/Percent of CPU/ {print $2}' "$bench/time.txt")
echo "engine=$engine users=$users wall=${secs}s users_per_s=$(awk -v u="$users" -v s="$secs" 'BEGIN{printf "%.0f", u/s}') peak_rss=$((rss / 1024))MiB cpu=$cpu"
