#!/usr/bin/env bash
# Make sure a headless Chromium is available for the dashboard test, and print
# its path on the last line. Installs Debian's `chromium` package (as root, with
# apt-get) when missing. Exits non-zero when it cannot: the test never skips.
# Override with CUTOVER_CHROMIUM=/path/to/chromium.
set -uo pipefail

log() { echo "browser-env: $*" >&2; }

if [ -n "${CUTOVER_CHROMIUM:-}" ]; then
  [ -x "$CUTOVER_CHROMIUM" ] || { log "CUTOVER_CHROMIUM=$CUTOVER_CHROMIUM is not executable"; exit 1; }
  echo "$CUTOVER_CHROMIUM"; exit 0
fi
for candidate in chromium chromium-browser google-chrome; do
  if path=$(command -v "$candidate" 2>/dev/null); then echo "$path"; exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  log "installing Debian's chromium with apt-get"
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
     || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; then
    command -v chromium && exit 0
  fi
fi
log "Chromium is needed for the dashboard test and cannot be installed here."
log "Install Debian's 'chromium' package (or set CUTOVER_CHROMIUM to a Chromium/Chrome binary)."
exit 1
