#!/usr/bin/env bash
# Runs one example of examples/ against a local NATS server, starting a temporary one when none
# runs on 127.0.0.1:4222 (NATS_PORT to change). Usage:
#   scripts/example.sh OrdersByRegion [--runner=FlinkRunner] [more pipeline options]
# Examples: OrdersByRegion, CopyStream, DeadLetters, CoreQueueGroup, WorkQueue, StreamingTotals,
# SecureConnection (which starts its own TLS server with a password on port 4443).
set -euo pipefail
cd "$(dirname "$0")/.."
example="${1:?Usage: scripts/example.sh ExampleName [pipeline options]; see the Examples section of README.md}"
shift
[ -f "examples/src/main/java/dev/natsio/examples/${example}.java" ] ||
  { echo "No example named ${example} in examples/src/main/java/dev/natsio/examples/."; exit 2; }
source scripts/local-server.sh

args=()
if [ "$example" = SecureConnection ]; then
  # A TLS server with a user and password, certificates made for this run.
  PORT="${NATS_TLS_PORT:-4443}"
  tls_dir="$(mktemp -d -t natsio-tls-XXXXXX)"
  trap 'stop_local_server; rm -rf "$tls_dir"' EXIT
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$tls_dir/server-key.pem" -out "$tls_dir/server-cert.pem" 2>/dev/null
  password="$(openssl rand -hex 12)"
  use_local_server "$PORT" --tls --tlscert "$tls_dir/server-cert.pem" --tlskey "$tls_dir/server-key.pem" \
    --user example --pass "$password"
  args=(--natsUrl="tls://127.0.0.1:${PORT}" --natsUser=example --caCertificateFile="$tls_dir/server-cert.pem")
  export NATS_PASSWORD="$password"
else
  PORT="${NATS_PORT:-4222}"
  use_local_server "$PORT"
  args=(--natsUrl="nats://127.0.0.1:${PORT}")
fi

echo "Building NatsIO and the examples (the first run downloads dependencies; this can take a few minutes)..."
mvn_plain -q -pl examples -am -DskipTests -Dmaven.javadoc.skip=true -Dmaven.source.skip=true package \
  org.apache.maven.plugins:maven-dependency-plugin:3.6.1:build-classpath -Dmdep.outputFile="$PWD/examples/target/classpath.txt"
opens="$(sed -n 's:.*<flink.jvm.opens>\(.*\)</flink.jvm.opens>.*:\1:p' pom.xml)"
# shellcheck disable=SC2086
java $opens -cp "examples/target/classes:$(cat examples/target/classpath.txt)" "dev.natsio.examples.${example}" "${args[@]}" "$@"

