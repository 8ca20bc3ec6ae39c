#!/usr/bin/env bash
# Makes sure a nats-server binary exists, installing Debian's package when we can.
# Prints the binary's path on stdout. Sourced by demo.sh, test.sh and .ci/run.
ensure_nats_server() {
  local bin="${NATS_SERVER_BIN:-}"
  if [ -n "$bin" ] && [ -x "$bin" ]; then echo "$bin"; return 0; fi
  bin="$(command -v nats-server 2>/dev/null || true)"
  if [ -z "$bin" ] && [ -x /usr/sbin/nats-server ]; then bin=/usr/sbin/nats-server; fi
  if [ -n "$bin" ]; then echo "$bin"; return 0; fi

  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; fi
  fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; }; then
    echo "nats-server not found: installing Debian's package nats-server" >&2
    $sudo apt-get update -qq >&2 &&
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nats-server >&2 || true
    if [ -x /usr/sbin/nats-server ]; then echo /usr/sbin/nats-server; return 0; fi
  fi
  cat >&2 <<'MSG'
nats-server is not installed and could not be installed automatically.
Install it with 'sudo apt-get install nats-server' (Debian/Ubuntu), or download a release
from the NATS project and set NATS_SERVER_BIN to the binary's path, then run this again.
MSG
  return 1
}
