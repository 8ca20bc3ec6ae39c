#!/usr/bin/env bash
# Runs every test: unit, harness, library and integration (real nats-servers, Direct and Flink).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-nats-server.sh
NATS_SERVER_BIN="$(ensure_nats_server)"
export NATS_SERVER_BIN
exec mvn -B verify "$@"
