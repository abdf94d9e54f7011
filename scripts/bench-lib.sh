# Helpers shared by the benchmark scripts (bench-proxy.sh, bench-migration.sh,
# bench-instructions.sh). Sourced, not run. The caller sets `work` (a scratch
# directory) and `pids` (an array of processes its EXIT trap stops) before
# starting nginx.

# bench_need "<Debian packages>" TOOL...: install the packages (as root, with
# apt-get) when a tool is missing, or say what is needed and stop.
bench_need() {
  local packages=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 && continue
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      # shellcheck disable=SC2086 # a list of packages
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q $packages >/dev/null
      return
    fi
    echo "bench: $tool is needed (apt-get install $packages)" >&2
    exit 1
  done
}

# Where cargo puts release builds: respects CARGO_TARGET_DIR and .cargo/config.
bench_release_dir() {
  local target
  target=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  echo "$target/release"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT [TRIES of 0.1 s, default 100] [PID that must stay alive]
wait_port() {
  local port=$1 tries=${2:-100} pid=${3:-}
  for _ in $(seq 1 "$tries"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: nothing on port $port" >&2
  return 1
}

# bench_nginx NAME SERVER-BLOCKS: one nginx worker under $work/NAME, in the
# background (its master's pid joins `pids`).
bench_nginx() {
  mkdir -p "$work/$1"
  cat > "$work/$1/nginx.conf" <<NGINX
worker_processes 1;
pid $work/$1/nginx.pid;
error_log $work/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  $2
}
NGINX
  nginx -c "$work/$1/nginx.conf" -p "$work/$1" -g 'daemon off;' &
  pids+=($!)
}

# bench_upstream NAME PORT: the trivial upstream, `return 200 "ok\n"`.
bench_upstream() {
  bench_nginx "$1" "server { listen 127.0.0.1:$2; location / { return 200 \"ok\\n\"; } }"
}
