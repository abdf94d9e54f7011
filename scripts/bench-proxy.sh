#!/usr/bin/env bash
# Proxy throughput and latency, measured in one run so the ratios hold on a
# noisy shared machine: wrk against
#   direct  — the trivial upstream (nginx `return 200`) itself;
#   nginx   — nginx `proxy_pass` to that upstream (keep-alive pool);
#   cutover — anonymous (pinned browser), Kernia cookie (session looked up,
#             then cached), Clerk bearer token (one token, verified once and
#             cached), Clerk bearer tokens from a pool of distinct tokens
#             (every token's first use pays the RSA verify).
# The upstream and the nginx proxy are separate nginx instances (one worker
# each), so the proxy's own CPU can be read apart from the upstream's.
# Prints, per target: requests/s, p50, p99 and the proxy's CPU per request
# (user + system time of the proxy process over the run ÷ requests; the steadiest
# figure on a noisy machine), then the same at half load (a fixed request rate
# per connection) and at light load (one connection). Record results in
# docs/BENCHMARKS.md.
#
# Usage: scripts/bench-proxy.sh [duration-secs] [connections]
# Environment: CUTOVER_BENCH_BIN=path/to/cutover measures that binary instead of
# building this checkout (to compare commits in one run);
# CUTOVER_BENCH_TOKENS=path/to/bench_tokens with it; CUTOVER_BENCH_TOKEN_POOL
# (default 20000); CUTOVER_BENCH_PRELOAD=LIB runs cutover with LD_PRELOAD=LIB
# (another allocator, e.g. Debian's libmimalloc.so.2 or libjemalloc.so.2);
# CUTOVER_BENCH_PERF=FILE records `perf record --call-graph dwarf` of cutover
# during the saturated run named by CUTOVER_BENCH_PERF_TARGET (default: the
# cached Clerk token run) into FILE; CUTOVER_BENCH_SYSCALLS=1 also counts, in
# every saturated run, the proxy process's system calls and context switches per
# request (`perf stat` on syscall tracepoints), printed under its row;
# CUTOVER_BENCH_ONLY=memory runs only the memory section;
# CUTOVER_BENCH_THREADS=N sets cutover's `[server] threads` (default: its own,
# one per CPU).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/bench-lib.sh
duration=${1:-10}
# 1,000 idle connections and the upstream pool need more than the default 1,024 descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
conns=${2:-32}
bench_need "wrk nginx-light" wrk nginx

if [ -z "${CUTOVER_BENCH_BIN:-}" ]; then
  cargo build --release --quiet --bin cutover --example bench_tokens
fi
bin=$(bench_release_dir)
cutover_bin=${CUTOVER_BENCH_BIN:-$bin/cutover}
python=$(scripts/kernia-env.sh | tail -n 1)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

up=$(free_port); ngx=$(free_port); cut=$(free_port)
bench_upstream upstream "$up"
bench_nginx proxy "upstream app { server 127.0.0.1:$up; keepalive 64; }
  server {
    listen 127.0.0.1:$ngx;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }"
wait_port $up; wait_port $ngx
# The worker process of each nginx (the master only forks it).
worker_of() { local master; master=$(cat "$work/$1/nginx.pid"); pgrep -P "$master" | head -n 1; }

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
${CUTOVER_BENCH_THREADS:+threads = $CUTOVER_BENCH_THREADS}
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
LD_PRELOAD=${CUTOVER_BENCH_PRELOAD:-} "$cutover_bin" serve -c "$work/cutover.toml" &
cutover_pid=$!
pids+=($cutover_pid)
wait_port $cut
for _ in $(seq 1 50); do [ -s "$work/proxy/nginx.pid" ] && [ -n "$(worker_of proxy)" ] && break; sleep 0.1; done
nginx_proxy_pid=$(worker_of proxy)
nginx_upstream_pid=$(worker_of upstream)

tokens_bin=${CUTOVER_BENCH_TOKENS:-$bin/examples/bench_tokens}
one_token=$("$tokens_bin" 1 https://clerk.bench.example 3600)
pool=${CUTOVER_BENCH_TOKEN_POOL:-20000}
"$tokens_bin" "$pool" https://clerk.bench.example 3600 > "$work/tokens.txt"
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

cat > "$work/paced.lua" <<'LUA'
-- half load: each connection waits 1 ms after every answer
delay = function() return 1 end
LUA

# user + system clock ticks of a process so far
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
syscall_events=raw_syscalls:sys_enter,context-switches
for call in read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait epoll_ctl futex accept4 close sched_yield; do
  syscall_events+=,syscalls:sys_enter_$call
done

run() { # name, proxy pid (or -), url, extra wrk args...
  local name=$1 pid=$2 url=$3; shift 3
  local out t0=0 t1=0
  [ "$pid" = - ] || t0=$(ticks "$pid")
  local perf_pid=
  if [ -n "${CUTOVER_BENCH_PERF:-}" ] && [ "$pid" = "${cutover_pid:-}" ] && [ "$name" = "${CUTOVER_BENCH_PERF_TARGET:-cutover Clerk token (cached)}" ] && [ "$conns" != 1 ]; then
    perf record -q -F 499 --call-graph dwarf,16384 -p "$pid" -o "$CUTOVER_BENCH_PERF" -- sleep "$duration" 2>/dev/null &
    perf_pid=$!
  fi
  local sys_pid=
  if [ -n "${CUTOVER_BENCH_SYSCALLS:-}" ] && [ "$pid" != - ] && [ "$conns" != 1 ]; then
    perf stat -x, -o "$work/syscalls.csv" -e "$syscall_events" -p "$pid" -- sleep "$duration" 2>/dev/null &
    sys_pid=$!
  fi
  out=$(wrk -t1 -c"$conns" -d"${duration}s" --latency "$@" "$url")
  [ "$pid" = - ] || t1=$(ticks "$pid")
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  [ -z "$sys_pid" ] || wait "$sys_pid" || true
  local rps p50 p99 n non2xx cpu=-
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $4}')
  if [ "$pid" != - ] && [ "${n:-0}" -gt 0 ]; then
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$n" 'BEGIN {printf "%.1f", d / hz * 1e6 / n}')
  fi
  printf "%-34s %12s %10s %10s %12s %s\n" "$name" "$rps" "$p50" "$p99" "$cpu" "${non2xx:+non-2xx: $non2xx}"
  if [ -n "$sys_pid" ] && [ "${n:-0}" -gt 0 ]; then
    # perf counted over the same seconds as wrk: per request, by call.
    awk -F, -v n="$n" '$3 ~ /:/ || $3 == "context-switches" {
        name = $3; sub(/.*sys_enter_?/, "", name); if (name == "") name = "all";
        if (name == "context-switches") name = "cs";
        if ($1 + 0 > 0) line = line sprintf(" %s %.2f", name, $1 / n)
      } END { print "    per request:" line }' "$work/syscalls.csv"
  fi
}
header() { printf "%-34s %12s %10s %10s %12s\n" "target" "requests/s" "p50" "p99" "CPU µs/req"; }

all_targets() {
  run "direct (nginx return 200)" "$nginx_upstream_pid" "http://127.0.0.1:$up/" "$@"
  run "nginx proxy_pass" "$nginx_proxy_pid" "http://127.0.0.1:$ngx/" -H "Authorization: Bearer $one_token" "$@"
  run "cutover anonymous (pinned)" "$cutover_pid" "http://127.0.0.1:$cut/" -H "Cookie: $pin" "$@"
  run "cutover Kernia cookie" "$cutover_pid" "http://127.0.0.1:$cut/" -H "Cookie: $kernia_cookie" "$@"
  run "cutover Clerk token (cached)" "$cutover_pid" "http://127.0.0.1:$cut/" -H "Authorization: Bearer $one_token" "$@"
}

if [ "${CUTOVER_BENCH_ONLY:-}" != memory ]; then
echo "wrk -t1 -c$conns -d${duration}s --latency; $(nproc) cores; $(date -u +%FT%TZ); $cutover_bin"
echo "(CPU µs/req is the proxy process's own: the nginx proxy worker, or cutover; for direct, the upstream worker)"
header
all_targets
run "cutover Clerk tokens (pool $pool)" "$cutover_pid" "http://127.0.0.1:$cut/" -s "$work/pool.lua"
run "nginx proxy_pass (again)" "$nginx_proxy_pid" "http://127.0.0.1:$ngx/" -H "Authorization: Bearer $one_token"

# Half load: the same connections, each pausing 1 ms after every answer, so
# every target is offered about the same rate, well under saturation.
echo
echo "half load: wrk -t1 -c$conns -d${duration}s --latency, 1 ms pause per connection after each answer"
header
run "nginx proxy_pass" "$nginx_proxy_pid" "http://127.0.0.1:$ngx/" -s "$work/paced.lua" -H "Authorization: Bearer $one_token"
run "cutover Clerk token (cached)" "$cutover_pid" "http://127.0.0.1:$cut/" -s "$work/paced.lua" -H "Authorization: Bearer $one_token"

# Added latency at light load: one connection, so latencies are not queueing.
echo
echo "light load: wrk -t1 -c1 -d${duration}s --latency"
header
conns=1
all_targets

fi

# Memory: a fresh cutover holding 10,000 verified Clerk tokens in its cache and
# 1,000 idle keep-alive client connections (each has made one request).
cut2=$(free_port)
sed "s/127.0.0.1:$cut\"/127.0.0.1:$cut2\"/" "$work/cutover.toml" > "$work/cutover-mem.toml"
LD_PRELOAD=${CUTOVER_BENCH_PRELOAD:-} "$cutover_bin" serve -c "$work/cutover-mem.toml" &
mem_pid=$!
pids+=($mem_pid)
wait_port $cut2
rss() { awk '/^VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$mem_pid/status"; }
rss_start=$(rss)
head -n 10000 "$work/tokens.txt" > "$work/tokens10k.txt"
sed "s#$work/tokens.txt#$work/tokens10k.txt#" "$work/pool.lua" > "$work/pool10k.lua"
# ~4 s at this rate sends every one of the 10,000 tokens at least once.
wrk -t1 -c8 -d4s -s "$work/pool10k.lua" "http://127.0.0.1:$cut2/" > /dev/null
rss_tokens=$(rss)
python3 - "$cut2" 1000 > "$work/idle.out" <<'PY' &
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok\n"):
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("connection closed")
        data += chunk
    conns.append(s)
print("ready", flush=True)
time.sleep(30)
PY
idle_pid=$!
pids+=($idle_pid)
for _ in $(seq 1 300); do grep -q ready "$work/idle.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$work/idle.out" || { echo "bench: idle connections not opened" >&2; exit 1; }
sleep 1
echo
echo "memory: one cutover after 10,000 distinct Clerk tokens, with 1,000 idle keep-alive connections open"
awk '/^VmRSS|^VmHWM/ {printf "  %s %.1f MiB\n", $1, $2 / 1024}' "/proc/$mem_pid/status"
echo "  (VmRSS at start $rss_start, after the 10,000 tokens $rss_tokens)"
# VmRSS also counts the binary's code pages the kernel mapped around each page
# fault (fault-around), which moves with the code's layout between builds; the
# anonymous part is what cutover itself allocated.
awk '/^RssAnon|^RssFile/ {printf "  %s %.1f MiB\n", $1, $2 / 1024}' "/proc/$mem_pid/status"
