#!/usr/bin/env bash
# Scale test with real processes: three `cutover serve` copies sharing
# PostgreSQL and Redis behind a round-robin front (nginx), the real Kernia app
# on the same database, a trivial legacy upstream (nginx `return 200`). Under
# ordinary load, N pending users (bcrypt cost 10, as Clerk writes) sign in at
# once; a few seconds into the storm copy 2 is SIGKILLed and restarted.
#
# Checks, then prints the figures (exit 1 when a check fails):
#   - every user ends signed in (a sign-in cut off by the kill is retried, as a
#     person would), and every user is `migrated` in the ledger: no lost migration;
#   - no user has two credential accounts: no double credential;
#   - no 5xx from the copies that were not killed; the killed copy's 5xx are at
#     most what it can have had in flight (sign-in + load concurrency);
#   - RSS and CPU of each copy (what deploy/kubernetes sizes its requests from).
#
# Usage: scripts/scale-test.sh [users] [sign-in concurrency] [load concurrency]
# Environment: CUTOVER_SCALE_PROFILE=release (default) or dev (faster to build);
#              CUTOVER_SCALE_KILL_AFTER=5 (seconds into the storm), CUTOVER_SCALE_DOWN=2
#              (seconds the copy stays down); CUTOVER_SCALE_QUEUE_DEADLINE_MS=10000
#              ([migration] queue_deadline_ms); CUTOVER_SCALE_LOCK_LEASE_SECS=5 ([migration]
#              lock_lease_secs); CUTOVER_TEST_PG_URL, CUTOVER_TEST_REDIS_URL.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
users=${1:-200}
signins=${2:-6}
load=${3:-4}
profile=${CUTOVER_SCALE_PROFILE:-release}
kill_after=${CUTOVER_SCALE_KILL_AFTER:-5}
down=${CUTOVER_SCALE_DOWN:-2}

command -v nginx >/dev/null 2>&1 || {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null
  else
    echo "scale: nginx is needed (apt-get install nginx-light)" >&2; exit 1
  fi
}
scripts/services.sh
python=$(scripts/kernia-env.sh | tail -n 1)
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
cargo build --profile "$profile" --bin cutover --example bench_storm
bin="$target_dir/$([ "$profile" = dev ] && echo debug || echo "$profile")"

work=$(mktemp -d)
db="cutover_scale_$$"
admin=${CUTOVER_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
redis_url=${CUTOVER_TEST_REDIS_URL:-redis://127.0.0.1:6379}
pg_base=${admin%/*}
pids=()
cleanup() {
  for p in "${pids[@]}" ${copy_pid[1]:-} ${copy_pid[2]:-} ${copy_pid[3]:-}; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  psql "$admin" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "scale: nothing on port $1" >&2; return 1; }

psql "$admin" -q -c "CREATE DATABASE $db" >/dev/null
up=$(free_port); front=$(free_port)
declare -a port copy_pid
for i in 1 2 3; do port[$i]=$(free_port); done

secret="scale-secret-0123456789abcdef-xyz"
KERNIA_DATABASE_URL="$pg_base/$db" KERNIA_SECRET="$secret" KERNIA_PORT=0 KERNIA_RATE_LIMIT=off \
  "$python" deploy/kernia-app/app.py > "$work/kernia.out" 2> "$work/kernia.log" & pids+=($!)
for _ in $(seq 1 300); do grep -q listening "$work/kernia.out" 2>/dev/null && break; sleep 0.1; done
kaddr=$(sed -n 's/.*listening on //p' "$work/kernia.out")
[ -n "$kaddr" ] || { cat "$work/kernia.log" >&2; exit 1; }
"$bin/examples/bench_storm" seed "$pg_base/$db" "$users"

mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream cutovers {
    server 127.0.0.1:${port[1]} max_fails=1 fail_timeout=2s;
    server 127.0.0.1:${port[2]} max_fails=1 fail_timeout=2s;
    server 127.0.0.1:${port[3]} max_fails=1 fail_timeout=2s;
    keepalive 32;
  }
  server { listen 127.0.0.1:$up; location / { return 200 "ok\n"; } }
  server {
    listen 127.0.0.1:$front;
    location / {
      proxy_pass http://cutovers;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      # nginx's defaults: a request nothing was sent for moves to the next copy;
      # a POST already sent is not replayed (the client sees 502).
      proxy_next_upstream error timeout;
      add_header x-cutover-copy \$upstream_addr always;
    }
  }
}
NGINX
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' & pids+=($!)
wait_port $up; wait_port $front

write_config() {
  cat > "$work/cutover-$1.toml" <<TOML
[server]
plain_listen = "127.0.0.1:${port[$1]}"
trusted_proxies = ["127.0.0.1"]
[upstreams]
legacy = "http://127.0.0.1:$up"
kernia = "http://$kaddr"
[kernia]
secret = "$secret"
database_url = "$pg_base/$db"
[state]
backend = "redis"
redis_url = "$redis_url"
key_prefix = "cutover-scale-$$:"
[migration]
# Every sign-in comes from 127.0.0.1 here.
ip_attempts = 1000000
# A storm on a small shared machine: let sign-ins wait for a hashing thread
# rather than shed them with 503 (CUTOVER_SCALE_QUEUE_DEADLINE_MS; cutover's default is 2000).
queue_deadline_ms = ${CUTOVER_SCALE_QUEUE_DEADLINE_MS:-10000}
# The per-user migration lock's lease: at most how long a killed copy's lock
# outlives it (CUTOVER_SCALE_LOCK_LEASE_SECS; cutover's default is 5).
lock_lease_secs = ${CUTOVER_SCALE_LOCK_LEASE_SECS:-5}
[log]
level = "warn"
TOML
}
start_copy() {
  "$bin/cutover" serve -c "$work/cutover-$1.toml" 2>> "$work/cutover-$1.log" &
  copy_pid[$1]=$!
  wait_port "${port[$1]}"
}
write_pids() {
  for i in 1 2 3; do echo "copy$i ${copy_pid[$i]}"; done > "$work/pids.tmp"
  mv "$work/pids.tmp" "$work/pids"
}
for i in 1 2 3; do write_config $i; start_copy $i; done
write_pids

echo "== $(nproc) cores; $(date -u +%FT%TZ); profile $profile; $users users, $signins concurrent sign-ins, $load load connections"
echo "== copies on ${port[1]}, ${port[2]}, ${port[3]}; front $front; copy 2 killed ${kill_after} s into the storm, down ${down} s"
"$python" scripts/scale_driver.py --front "http://127.0.0.1:$front" --users "$users" \
  --signin-concurrency "$signins" --load-concurrency "$load" \
  --pids-file "$work/pids" --out "$work/result.json" > "$work/driver.out" 2>&1 &
driver=$!
for _ in $(seq 1 300); do grep -q '^storm:' "$work/driver.out" 2>/dev/null && break; sleep 0.1; done
sleep "$kill_after"
killed_at=$(date +%s.%N)
kill -KILL "${copy_pid[2]}"
wait "${copy_pid[2]}" 2>/dev/null || true
echo "== $(date -u +%T) copy 2 (pid ${copy_pid[2]}) SIGKILLed"
sleep "$down"
restart_started=$(date +%s.%N)
start_copy 2
restart_ready=$(date +%s.%N)
write_pids
echo "== $(date -u +%T) copy 2 restarted (pid ${copy_pid[2]}), listening after $("$python" -c "print(f'{$restart_ready - $restart_started:.2f}')") s"
wait $driver || { cat "$work/driver.out" >&2; exit 1; }
cat "$work/driver.out"

sql() { psql "$pg_base/$db" -At -c "$1"; }
migrated=$(sql "SELECT COUNT(*) FROM cutover_ledger WHERE state = 'migrated'")
pending=$(sql "SELECT COUNT(*) FROM cutover_ledger WHERE state <> 'migrated'")
with_credential=$(sql "SELECT COUNT(DISTINCT \"userId\") FROM account WHERE \"providerId\" = 'credential'")
doubled=$(sql "SELECT COUNT(*) FROM (SELECT \"userId\" FROM account WHERE \"providerId\" = 'credential' GROUP BY \"userId\" HAVING COUNT(*) > 1) d")

"$python" - "$work/result.json" "127.0.0.1:${port[2]}" "$users" "$migrated" "$pending" \
  "$with_credential" "$doubled" "$((signins + load))" "$killed_at" <<'PY'
import json, sys
path, killed, users, migrated, pending, cred, doubled, inflight, killed_at = sys.argv[1:]
users, migrated, pending, cred, doubled, inflight = map(int, (users, migrated, pending, cred, doubled, inflight))
r = json.load(open(path))
fails = []
def check(ok, what):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        fails.append(what)
print("== per copy (answers by the copy that answered; 'noanswer' = connection failed)")
for copy, counts in sorted(r["by_copy"].items()):
    label = copy + (" (killed)" if copy == killed else "")
    print(f"  {label:<26} " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
other_5xx = sum(v for c, counts in r["by_copy"].items() if c != killed
                for k, v in counts.items() if k.endswith("_5xx") or k.endswith("_noanswer"))
killed_5xx = sum(v for k, v in r["by_copy"].get(killed, {}).items() if k.endswith("_5xx"))
print("== resources per copy (sampled each second)")
copies = {}
for s in r["samples"]:
    c = copies.setdefault((s["copy"], s["pid"]), {"rss": 0, "rss0": s["rss_kib"], "cpu0": s["cpu_s"], "cpu1": s["cpu_s"], "t0": s["t"], "t1": s["t"]})
    c["rss"] = max(c["rss"], s["rss_kib"]); c["cpu1"] = s["cpu_s"]; c["t1"] = s["t"]
for (name, pid), c in sorted(copies.items()):
    span = max(c["t1"] - c["t0"], 1e-9)
    print(f"  {name} pid {pid:<8} RSS first {c['rss0'] / 1024:6.1f} MiB, peak {c['rss'] / 1024:6.1f} MiB   CPU {c['cpu1'] - c['cpu0']:6.2f} s over {span:5.1f} s = {(c['cpu1'] - c['cpu0']) / span:4.2f} cores")
print("== checks")
check(r["signed_in"] == users, f"every user signed in: {r['signed_in']}/{users} ({len(r['signin_failed'])} failed: {dict(list(r['signin_failed'].items())[:5])})")
check(migrated == users and pending == 0, f"no lost migration: {migrated} migrated, {pending} not migrated in the ledger")
check(cred == users, f"every user has a Kernia credential: {cred}/{users}")
check(doubled == 0, f"no double credential: {doubled} users with more than one")
print("== every 5xx (seconds after the kill, sign-in or load, status, copy, user)")
for t, k, st, c, u in r["events_5xx"]:
    print(f"  {t - float(killed_at):+7.2f} s  {k:<6} {st}  {c}{' (killed)' if c == killed else ''}  {'storm' + str(u) if u >= 0 else ''}")
shed = sum(v for counts in r["by_copy"].values() for k, v in counts.items() if k.endswith("_503"))
print(f"  (503 + Retry-After load shedding, all copies: {shed}; retried by the driver)")
check(other_5xx == 0, f"no 5xx (or dropped connection) from the copies not killed: {other_5xx}")
check(killed_5xx <= inflight, f"killed copy's 5xx within what it can have had in flight: {killed_5xx} <= {inflight}")
sys.exit(1 if fails else 0)
PY
