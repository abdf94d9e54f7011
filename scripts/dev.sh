#!/usr/bin/env bash
# The local demo stack on embedded defaults (SQLite, in-process state):
#   - the legacy app, an app still on Clerk (deploy/legacy-app) on 127.0.0.1:3002,
#     with a local stand-in for Clerk's sign-in and JWKS on 127.0.0.1:3010;
#   - the sample Kernia 0.1.0 app (deploy/kernia-app) on 127.0.0.1:3001, its
#     database in .dev/kernia.db;
#   - the sample Clerk export (deploy/demo) imported into it on first start;
#   - cutover in front (config/dev.toml) on http://127.0.0.1:8080 and
#     https://localhost:8443, half of the new browsers to each app.
# Prints the demo's passwords and a walkthrough. Ctrl-C stops everything.
#
# Environment (all optional):
#   CUTOVER_BIN               use this cutover binary instead of building one
#   CUTOVER_KERNIA_PYTHON     the Kernia environment's python (else scripts/kernia-env.sh)
#   CUTOVER_DEV_DIR           state directory instead of .dev (database, keys, logs)
#   CUTOVER_DEV_PORT_OFFSET   add this to every port (a second stack beside the first;
#                             the configuration is then written to $CUTOVER_DEV_DIR/dev.toml)
#   CUTOVER_DEV_RESET=1       start over: delete the state directory first
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

say() { echo "dev: $*" >&2; }

dev_dir=${CUTOVER_DEV_DIR:-.dev}
offset=${CUTOVER_DEV_PORT_OFFSET:-0}
case "$offset" in ''|*[!0-9]*) say "CUTOVER_DEV_PORT_OFFSET must be a number, not '$offset'"; exit 2 ;; esac
if [ "${CUTOVER_DEV_RESET:-0}" = 1 ]; then
  say "CUTOVER_DEV_RESET=1: deleting $dev_dir"
  rm -rf "$dev_dir"
fi
mkdir -p "$dev_dir"
dev_dir=$(cd "$dev_dir" && pwd)

port() { echo $(( $1 + offset )); }
https_port=$(port 8443) http_port=$(port 8080) kernia_port=$(port 3001)
legacy_port=$(port 3002) clerk_port=$(port 3010) admin_port=$(port 9901)

# ---- the Kernia environment (created once, cached under ~/.cache/cutover)
if [ -n "${CUTOVER_KERNIA_PYTHON:-}" ]; then
  python=$CUTOVER_KERNIA_PYTHON
else
  say "preparing the Kernia Python environment (the first time takes a minute or two)"
  python=$(scripts/kernia-env.sh | tail -n 1)
fi

# ---- cutover itself
if [ -n "${CUTOVER_BIN:-}" ]; then
  cutover=$CUTOVER_BIN
else
  command -v cargo >/dev/null 2>&1 || { say "cargo not found; install Rust (https://rustup.rs)"; exit 1; }
  # Where cargo puts the binary: respects CARGO_TARGET_DIR and .cargo/config.
  target_dir=$(cargo metadata --format-version 1 --no-deps \
    | "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  cutover="$target_dir/debug/cutover"
  if [ ! -x "$cutover" ]; then
    say "building cutover into $target_dir (the first build compiles every dependency: several minutes)"
  else
    say "building cutover (incremental)"
  fi
  # Not --quiet: cargo's own progress lines show what the first build is doing.
  cargo build --bin cutover
fi
[ -x "$cutover" ] || { say "no cutover binary at $cutover"; exit 1; }

# ---- the configuration
config=config/dev.toml
if [ "$offset" != 0 ] || [ "$dev_dir" != "$root/.dev" ]; then
  config="$dev_dir/dev.toml"
  sed -e "s|:8443|:$https_port|g" -e "s|:8080|:$http_port|g" -e "s|:3001|:$kernia_port|g" \
      -e "s|:3002|:$legacy_port|g" -e "s|:3010|:$clerk_port|g" -e "s|:9901|:$admin_port|g" \
      -e "s|sqlite://\.dev/|sqlite://$dev_dir/|" \
      -e "s|\"certs/|\"$root/certs/|g" config/dev.toml > "$config"
fi
[ -f certs/dev.crt ] || "$cutover" dev-cert --dir certs --name dev

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

# wait_for NAME PID FILE: until FILE holds a "listening" line.
wait_for() {
  for _ in $(seq 1 120); do
    grep -q "listening" "$3" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { say "$1 failed to start:"; cat "${3%.out}.log" >&2; exit 1; }
    sleep 0.5
  done
  say "$1 did not start within 60 s (log: ${3%.out}.log)"; exit 1
}

# ---- the Kernia app (creates Kernia's tables on start)
export KERNIA_SECRET="cutover-dev-secret-not-for-production"      # as in config/dev.toml
export KERNIA_DATABASE_URL="sqlite://$dev_dir/kernia.db"
export KERNIA_PORT=$kernia_port
export KERNIA_BASE_URL="http://127.0.0.1:$http_port"
export KERNIA_TRUSTED_ORIGINS="http://localhost:$http_port,https://localhost:$https_port,https://127.0.0.1:$https_port"
"$python" deploy/kernia-app/app.py > "$dev_dir/kernia-app.out" 2> "$dev_dir/kernia-app.log" &
pids+=($!)
wait_for "the Kernia app" $! "$dev_dir/kernia-app.out"
say "$(cat "$dev_dir/kernia-app.out") (log: $dev_dir/kernia-app.log)"

# ---- the legacy app and the Clerk stand-in
LEGACY_PORT=$legacy_port CLERK_STANDIN_PORT=$clerk_port \
CLERK_STANDIN_KEY="$dev_dir/clerk-standin-key.pem" DEMO_DIR=deploy/demo CUTOVER_BIN="$cutover" \
CLERK_STANDIN_APP_URL="http://127.0.0.1:$http_port/app" \
CUTOVER_ASSERTION_SECRET="cutover-dev-assertion-secret-not-for-production" \
  "$python" deploy/legacy-app/app.py > "$dev_dir/legacy-app.out" 2> "$dev_dir/legacy-app.log" &
pids+=($!)
wait_for "the legacy app" $! "$dev_dir/legacy-app.out"
say "$(cat "$dev_dir/legacy-app.out") (log: $dev_dir/legacy-app.log)"

# ---- the sample Clerk export, once
if [ ! -f "$dev_dir/demo-imported" ]; then
  say "importing the sample Clerk export (deploy/demo) into Kernia's database"
  "$cutover" import -c "$config" --progress plain --report "$dev_dir/demo-import.json" \
    --csv deploy/demo/users.csv --users deploy/demo/users.json \
    --organizations deploy/demo/organizations.json --memberships deploy/demo/memberships.json \
    --invitations deploy/demo/invitations.json
  touch "$dev_dir/demo-imported"
fi

# ---- cutover
# The admin listener's token (config/dev.toml: [admin] token_env).
export CUTOVER_ADMIN_TOKEN="${CUTOVER_ADMIN_TOKEN:-dev-admin-token-not-for-production}"
"$cutover" serve -c "$config" 2> >(tee "$dev_dir/cutover.log" >&2) &
cutover_pid=$!
pids+=($cutover_pid)
for _ in $(seq 1 120); do
  (exec 3<>"/dev/tcp/127.0.0.1/$http_port") 2>/dev/null && break
  kill -0 $cutover_pid 2>/dev/null || { say "cutover failed to start (log: $dev_dir/cutover.log)"; exit 1; }
  sleep 0.5
done

app="http://127.0.0.1:$http_port/app"
cat >&2 <<EOF

  The demo's Clerk users (deploy/demo; passwords are public demo data):
$("$python" -c '
import json, sys
for u in json.load(open("deploy/demo/passwords.json")):
    pw = u["password"] or "(none: reset required)"
    print("    %-20s %-22s %-21s %s" % (u["email"], pw, u["hasher"], u["note"]))
')
  TOTP code for grace@demo.test: $python -c 'import pyotp; print(pyotp.TOTP("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ").now())'

  Walkthrough (one browser, http; or scripts/dev-walkthrough.py does it for you):
    1. Sign in at "Clerk": http://127.0.0.1:$clerk_port/sign-in as ada@demo.test / ada-clerk-2026;
       you land on $app, served by the legacy app: Ada, signed in with Clerk.
    2. "Sign out (at Clerk)": Ada is allow-listed, so her browser now goes to the Kernia app.
    3. "Sign in" there with the same password: cutover verifies it against Clerk's bcrypt
       digest, writes it into Kernia, and the Kernia app greets Ada (provider: kernia).
    4. $cutover status -c $config   (1 migrated; the rest still pending)
    5. Other browsers: half of them land on each app (config/dev.toml [rollout]).
    6. The dashboard: http://127.0.0.1:$admin_port/ (any user name; password: $CUTOVER_ADMIN_TOKEN)

dev: ready: cutover on http://127.0.0.1:$http_port and https://localhost:$https_port (Ctrl-C stops)
EOF
wait $cutover_pid
