#!/usr/bin/env bash
# Proxy throughput and latency, measured in one run so the ratios hold on a
# noisy shared machine: wrk against
#   direct  — the trivial upstream (nginx `return 200`) itself;
#   nginx   — nginx `proxy_pass` to that upstream (keep-alive pool);
#   cutover — anonymous (pinned browser), Kernia cookie (session looked up,
#             then cached), Clerk bearer token (one token, verified once and
#             cached), Clerk bearer tokens from a pool of distinct tokens
#             (every token's first use pays the RSA verify).
# Prints requests/s and latency percentiles; record results in docs/BENCHMARKS.md.
#
# Usage: scripts/bench-proxy.sh [duration-secs] [connections]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
duration=${1:-10}
conns=${2:-32}
for tool in wrk nginx; do
  command -v $tool >/dev/null 2>&1 || {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk nginx-light >/dev/null
    else
      echo "bench: $tool is needed (apt-get install wrk nginx-light)" >&2; exit 1
    fi
  }
done

cargo build --release --quiet --bin cutover --example bench_tokens
# Where cargo put them: respects CARGO_TARGET_DIR and .cargo/config.
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/release"
python=$(scripts/kernia-env.sh | tail -n 1)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "bench: nothing on port $1" >&2; return 1; }

up=$(free_port); ngx=$(free_port); cut=$(free_port)
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream app { server 127.0.0.1:$up; keepalive 64; }
  server { listen 127.0.0.1:$up; location / { return 200 "ok\n"; } }
  server {
    listen 127.0.0.1:$ngx;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
NGINX
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' &
pids+=($!)
wait_port $up; wait_port $ngx

# A Kernia database with one live session: the real Kernia app creates the
# schema and the session, then stops.
secret="bench-secret-0123456789abcdef-xyz"
export KERNIA_DATABASE_URL="sqlite://$work/kernia.db" KERNIA_SECRET="$secret" KERNIA_PORT=0
"$python" deploy/kernia-app/app.py > "$work/kernia.out" 2> "$work/kernia.log" &
kpid=$!
for _ in $(seq 1 100); do grep -q listening "$work/kernia.out" 2>/dev/null && break; sleep 0.1; done
kaddr=$(sed -n 's/.*listening on //p' "$work/kernia.out")
kernia_cookie=$(curl -s -D - -o /dev/null -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"bench-password-1","name":"Bench"}' \
  "http://$kaddr/api/auth/sign-up/email" | sed -n 's/^set-cookie: \(better-auth.session_token=[^;]*\).*/\1/ip' | head -n 1)
kill $kpid; wait $kpid 2>/dev/null || true
[ -n "$kernia_cookie" ] || { echo "bench: no Kernia session cookie" >&2; cat "$work/kernia.log" >&2; exit 1; }

cat > "$work/cutover.toml" <<TOML
[server]
plain_listen = "127.0.0.1:$cut"
[upstreams]
legacy = "http://127.0.0.1:$up"
kernia = "http://127.0.0.1:$up"
[kernia]
secret = "$secret"
database_url = "sqlite://$work/kernia.db"
[clerk]
issuer = "https://clerk.bench.example"
jwt_key_file = "$root/tests/fixtures/clerk/key_a.pub.pem"
authorized_parties = ["https://app.bench.example"]
[rollout]
percentage = 50
[limits]
max_connections = 4096
[log]
level = "warn"
TOML
"$bin/cutover" serve -c "$work/cutover.toml" &
pids+=($!)
wait_port $cut

one_token=$("$bin/examples/bench_tokens" 1 https://clerk.bench.example 3600)
pool=${CUTOVER_BENCH_TOKEN_POOL:-20000}
"$bin/examples/bench_tokens" "$pool" https://clerk.bench.example 3600 > "$work/tokens.txt"
cat > "$work/pool.lua" <<LUA
local tokens = {}
for line in io.lines("$work/tokens.txt") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i + 1
  local t = tokens[(i - 1) % #tokens + 1]
  return wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. t })
end
LUA
pin="cutover_route=b.$(printf '0%.0s' $(seq 1 32))"

run() { # name, url, extra wrk args...
  local name=$1 url=$2; shift 2
  local out
  out=$(wrk -t1 -c"$conns" -d"${duration}s" --latency "$@" "$url")
  local rps p50 p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local non2xx
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $4}')
  printf "%-34s %12s %10s %10s %s\n" "$name" "$rps" "$p50" "$p99" "${non2xx:+non-2xx: $non2xx}"
}

echo "wrk -t1 -c$conns -d${duration}s --latency; $(nproc) cores; $(date -u +%FT%TZ)"
printf "%-34s %12s %10s %10s\n" "target" "requests/s" "p50" "p99"
run "direct (nginx return 200)" "http://127.0.0.1:$up/"
run "nginx proxy_pass" "http://127.0.0.1:$ngx/"
run "cutover anonymous (pinned)" "http://127.0.0.1:$cut/" -H "Cookie: $pin"
run "cutover Kernia cookie" "http://127.0.0.1:$cut/" -H "Cookie: $kernia_cookie"
run "cutover Clerk token (cached)" "http://127.0.0.1:$cut/" -H "Authorization: Bearer $one_token"
run "cutover Clerk tokens (pool $pool)" "http://127.0.0.1:$cut/" -s "$work/pool.lua"
run "nginx proxy_pass (again)" "http://127.0.0.1:$ngx/"

# Added latency at light load: one connection, so latencies are not queueing.
echo
echo "light load: wrk -t1 -c1 -d${duration}s --latency"
printf "%-34s %12s %10s %10s\n" "target" "requests/s" "p50" "p99"
conns=1
run "direct (nginx return 200)" "http://127.0.0.1:$up/"
run "nginx proxy_pass" "http://127.0.0.1:$ngx/"
run "cutover anonymous (pinned)" "http://127.0.0.1:$cut/" -H "Cookie: $pin"
run "cutover Clerk token (cached)" "http://127.0.0.1:$cut/" -H "Authorization: Bearer $one_token"
