#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are up for the
# tests: start them when installed but stopped, install them (Debian/Ubuntu, as
# root) when missing, and otherwise say exactly what is needed. Exits non-zero
# when a service cannot be made available: tests never skip silently.
set -uo pipefail

pg_url=${CUTOVER_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
redis_url=${CUTOVER_TEST_REDIS_URL:-redis://127.0.0.1:6379}

log() { echo "services: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing $* with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1; }
  else
    return 1
  fi
}

ensure_postgres() {
  # Only the default local server is managed here; a custom URL must already work.
  if [ -n "${CUTOVER_TEST_PG_URL:-}" ]; then return 0; fi
  if port_open 5432; then return 0; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql || {
      log "PostgreSQL is not running on 127.0.0.1:5432 and cannot be installed here."
      log "Install and start it (trust auth for user postgres on 127.0.0.1), or set CUTOVER_TEST_PG_URL."
      return 1
    }
    # Tests connect as postgres over TCP without a password.
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    done
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 \
    || pg_ctlcluster "$version" main start >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do port_open 5432 && return 0; sleep 1; done
  log "PostgreSQL did not come up on 127.0.0.1:5432"
  return 1
}

ensure_redis() {
  if [ -n "${CUTOVER_TEST_REDIS_URL:-}" ]; then return 0; fi
  if port_open 6379; then return 0; fi
  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server || {
      log "Redis is not running on 127.0.0.1:6379 and cannot be installed here."
      log "Install and start it, or set CUTOVER_TEST_REDIS_URL."
      return 1
    }
  fi
  log "starting Redis"
  mkdir -p /tmp/cutover-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/cutover-redis --logfile /tmp/cutover-redis/redis.log >/dev/null 2>&1
  for _ in $(seq 1 20); do port_open 6379 && return 0; sleep 0.5; done
  log "Redis did not come up on 127.0.0.1:6379"
  return 1
}

ok=0
ensure_postgres || ok=1
ensure_redis || ok=1
if [ $ok = 0 ]; then log "PostgreSQL ($pg_url) and Redis ($redis_url) are up"; fi
exit $ok
