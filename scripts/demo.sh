#!/usr/bin/env bash
# The demo: builds NatsIO, makes sure a NATS server with JetStream listens on 127.0.0.1:4222
# (starting a temporary one, and installing Debian's nats-server package if needed), runs a
# pipeline on the Direct runner against it, and stops the server it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-nats-server.sh

PORT="${NATS_PORT:-4222}"
export NATS_URL="nats://127.0.0.1:${PORT}"
started_pid=""
store_dir=""
cleanup() {
  if [ -n "$started_pid" ]; then
    kill "$started_pid" 2>/dev/null || true
    wait "$started_pid" 2>/dev/null || true
    echo "Stopped the nats-server this demo started (pid $started_pid)."
  fi
  [ -n "$store_dir" ] && rm -rf "$store_dir"
}
trap cleanup EXIT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null; }

if listening; then
  echo "Using the NATS server already listening on ${NATS_URL} (it needs JetStream enabled)."
else
  bin="$(ensure_nats_server)"
  store_dir="$(mktemp -d -t natsio-demo-XXXXXX)"
  "$bin" -a 127.0.0.1 -p "$PORT" -js -sd "$store_dir" >"$store_dir/server.log" 2>&1 &
  started_pid=$!
  for _ in $(seq 1 100); do listening && break; sleep 0.1; done
  listening || { echo "nats-server did not start; its log:"; cat "$store_dir/server.log"; exit 1; }
  echo "Started a temporary nats-server with JetStream on ${NATS_URL} (pid $started_pid)."
fi

echo "Building NatsIO (first run downloads dependencies; this can take a few minutes)..."
mvn -B -q -DskipTests install -pl examples -am
mvn -B -q -pl examples exec:java
