#!/usr/bin/env bash
# The demo: builds NatsIO, makes sure a NATS server with JetStream listens on 127.0.0.1:4222
# (starting a temporary one, and installing Debian's nats-server package if needed), runs a
# pipeline on the Direct runner against it, and stops the server it started.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${NATS_PORT:-4222}"
export NATS_URL="nats://127.0.0.1:${PORT}"
source scripts/local-server.sh
use_local_server "$PORT"

echo "Building NatsIO (first run downloads dependencies; this can take a few minutes)..."
mvn_plain -q -DskipTests install -pl examples -am
mvn_plain -q -pl examples exec:java -Dexec.args="--natsUrl=${NATS_URL}"
