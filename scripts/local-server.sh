#!/usr/bin/env bash
# Sourced by demo.sh and example.sh: makes sure a NATS server with JetStream listens on
# 127.0.0.1:$PORT, starting a temporary one (with its own store directory) when none does, and
# stops the one it started when the script exits.
source "$(dirname "${BASH_SOURCE[0]}")/ensure-nats-server.sh"

started_pid=""
store_dir=""
stop_local_server() {
  if [ -n "$started_pid" ]; then
    kill "$started_pid" 2>/dev/null || true
    wait "$started_pid" 2>/dev/null || true
    echo "Stopped the nats-server this script started (pid $started_pid)."
  fi
  [ -n "$store_dir" ] && rm -rf "$store_dir"
  return 0
}
trap stop_local_server EXIT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# use_local_server PORT [nats-server options...]: the extra options apply only to a server started here.
use_local_server() {
  local port="$1"
  shift
  if listening "$port"; then
    echo "Using the NATS server already listening on 127.0.0.1:${port} (it needs JetStream enabled)."
    return 0
  fi
  local bin
  bin="$(ensure_nats_server)"
  store_dir="$(mktemp -d -t natsio-example-XXXXXX)"
  "$bin" -a 127.0.0.1 -p "$port" -js -sd "$store_dir" "$@" >"$store_dir/server.log" 2>&1 &
  started_pid=$!
  for _ in $(seq 1 100); do listening "$port" && break; sleep 0.1; done
  listening "$port" || { echo "nats-server did not start; its log:"; cat "$store_dir/server.log"; exit 1; }
  echo "Started a temporary nats-server with JetStream on 127.0.0.1:${port} (pid $started_pid)."
}

# Maven prints terminal colour resets (ESC[0m) even in batch mode; keep the scripts' output plain.
mvn_plain() {
  mvn -B -Dstyle.color=never "$@" 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g'
}
