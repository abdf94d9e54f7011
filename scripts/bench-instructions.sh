#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: a figure
# that does not depend on what else the machine is doing, so two builds can be
# compared to the per cent on a noisy machine (CPU time per request cannot).
# It counts user-space instructions only (cutover, hyper, tokio, glibc, aws-lc),
# not the kernel's socket work, and not time: a change that saves instructions
# but adds a wait, or the reverse, needs scripts/bench-proxy.sh as well.
#
# For each kind of request: cutover (release build) runs under callgrind in
# front of an nginx `return 200` upstream; one warm-up request; counters zeroed
# (`callgrind_control -z`); N requests sent one after another on one keep-alive
# connection by curl; counters dumped; instructions ÷ N printed. Kinds:
#   anonymous  a browser with a pin cookie (no identity);
#   cached     one Clerk session token, verified at the warm-up, then cached;
#   distinct   N distinct Clerk tokens of N users, each used once (every one is
#              an RSA verify, a ledger look-up and the caches' inserts).
#
# Usage: scripts/bench-instructions.sh [requests]      (default 1000)
# Env:   CUTOVER_BENCH_BIN, CUTOVER_BENCH_TOKENS as in scripts/bench-proxy.sh;
#        CUTOVER_BENCH_KEEP=DIR keeps each kind's callgrind dump there
#        (DIR/{anonymous,cached,distinct}.callgrind, for `callgrind_annotate --inclusive=yes`).
# Needs valgrind, nginx and curl (installed with apt-get when run as root).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/bench-lib.sh
n=${1:-1000}
bench_need "valgrind nginx-light curl" valgrind callgrind_control nginx curl

if [ -z "${CUTOVER_BENCH_BIN:-}" ]; then
  cargo build --release --quiet --bin cutover --example bench_tokens
fi
bin=$(bench_release_dir)
cutover_bin=${CUTOVER_BENCH_BIN:-$bin/cutover}
tokens_bin=${CUTOVER_BENCH_TOKENS:-$bin/examples/bench_tokens}

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

up=$(free_port); cut=$(free_port)
bench_upstream upstream "$up"
wait_port "$up"

# Kernia's schema, as the Kernia app creates it (cutover never creates it).
python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).executescript(open(sys.argv[2]).read())' \
  "$work/kernia.db" tests/fixtures/import/kernia_schema.sqlite.sql
cat > "$work/cutover.toml" <<TOML
[server]
plain_listen = "127.0.0.1:$cut"
threads = 1
[upstreams]
legacy = "http://127.0.0.1:$up"
kernia = "http://127.0.0.1:$up"
[kernia]
secret = "bench-secret-0123456789abcdef-xyz"
database_url = "sqlite://$work/kernia.db"
[clerk]
issuer = "https://clerk.bench.example"
jwt_key_file = "$root/tests/fixtures/clerk/key_a.pub.pem"
authorized_parties = ["https://app.bench.example"]
[rollout]
percentage = 50
[log]
level = "warn"
TOML
valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.%p" \
  "$cutover_bin" serve -c "$work/cutover.toml" 2> "$work/valgrind.log" &
vg=$!
pids+=($vg)
wait_port "$cut" 1200 "$vg" || { cat "$work/valgrind.log" >&2; exit 1; }

one_token=$("$tokens_bin" 1 https://clerk.bench.example 3600)
"$tokens_bin" "$((n + 1))" https://clerk.bench.example 3600 > "$work/tokens.txt"
pin="cutover_route=b.$(printf '0%.0s' $(seq 1 32))"

# A curl config sending `n` GETs on one connection; $1: "same" header for all,
# or "each" distinct token per request (from line 2 of tokens.txt on).
curl_config() {
  local kind=$1 header=$2 i
  : > "$work/curl.cfg"
  for i in $(seq 1 "$n"); do
    [ "$i" = 1 ] || echo 'next' >> "$work/curl.cfg"
    echo "url = \"http://127.0.0.1:$cut/\"" >> "$work/curl.cfg"
    echo 'output = "/dev/null"' >> "$work/curl.cfg"
    echo 'silent' >> "$work/curl.cfg"
    echo 'write-out = "%{http_code} new-connections=%{num_connects}\\n"' >> "$work/curl.cfg"
    if [ "$kind" = each ]; then
      echo "header = \"Authorization: Bearer $(sed -n "$((i + 1))p" "$work/tokens.txt")\"" >> "$work/curl.cfg"
    else
      echo "header = \"$header\"" >> "$work/curl.cfg"
    fi
  done
}

# The instructions (Ir) of the newest dump.
ir_of_last_dump() {
  local f
  f=$(ls -t "$work"/callgrind.* | head -n 1)
  awk '/^(summary|totals):/ {print $2; exit}' "$f"
}

measure() { # short name, name, kind, warm-up header, header for all
  local id=$1 name=$2 kind=$3 warm=$4 header=$5 codes ir
  curl -s -o /dev/null -H "$warm" "http://127.0.0.1:$cut/"
  curl_config "$kind" "$header"
  callgrind_control -z "$vg" >/dev/null 2>&1
  codes=$(curl -K "$work/curl.cfg" | sort | uniq -c | tr -s ' ' | tr '\n' ';')
  callgrind_control -d "$vg" >/dev/null 2>&1
  ir=$(ir_of_last_dump)
  if [ -n "${CUTOVER_BENCH_KEEP:-}" ]; then
    mkdir -p "$CUTOVER_BENCH_KEEP"
    cp "$(ls -t "$work"/callgrind.* | head -n 1)" "$CUTOVER_BENCH_KEEP/$id.callgrind"
  fi
  printf '%-34s %8d %14d %12.0f   (answers: %s)\n' "$name" "$n" "$ir" "$(awk -v a="$ir" -v b="$n" 'BEGIN {print a / b}')" "$codes"
}

echo "cutover: $cutover_bin"
printf '%-34s %8s %14s %12s\n' "kind" "requests" "instructions" "per request"
measure anonymous "anonymous (pinned)" same "Cookie: $pin" "Cookie: $pin"
measure cached "Clerk token (cached)" same "Authorization: Bearer $one_token" "Authorization: Bearer $one_token"
measure distinct "Clerk tokens (distinct, each once)" each "Authorization: Bearer $one_token" ""
