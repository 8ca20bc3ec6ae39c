#!/usr/bin/env bash
# Benchmarks NatsIO against raw jnats: builds what it needs, starts its own nats-server (the test
# harness's NatsTestServer: its own port and store directory), fills file-backed streams, runs every
# case with its baseline beside it, and prints a table. Results: integration/target/bench/.
#
#   scripts/bench.sh            full run (1M messages per case, 3 repetitions; about 15 minutes on 2 cores)
#   scripts/bench.sh --quick    smoke size (what CI runs through BenchmarkSmokeTest; numbers mean nothing)
#   scripts/bench.sh --parts read,write --repetitions 1    a subset (parts: read, write, latency, memory)
#   scripts/bench.sh --parts read --only streaming          only the throughput cases whose name has "streaming"
#   scripts/bench.sh --parts read --only partitions --messages 200000   the partitioned drains, smaller
#   BENCH_JFR=1 scripts/bench.sh ...    also records a JFR profile: integration/target/bench/bench.jfr
#
# Everything it starts (the benchmark JVM, its nats-server, the memory probes' JVMs) is stopped when it
# ends, also when it fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-nats-server.sh
NATS_SERVER_BIN="$(ensure_nats_server)"
export NATS_SERVER_BIN

out_dir="integration/target/bench"
mkdir -p "$out_dir"
# A temp dir of our own: the harness puts each nats-server's store there, so whatever this run
# started can be found by that path and stopped, even if the JVM itself was killed.
work_dir="$(mktemp -d -t natsio-bench-XXXXXX)"
bench_pid=""
cleanup() {
  local status=$?
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill "$bench_pid" 2>/dev/null || true   # Its shutdown hooks stop the nats-server it started.
    for _ in $(seq 1 50); do kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$bench_pid" 2>/dev/null || true
  fi
  # Anything still running from our work dir (a nats-server or probe JVM of a killed run): stop it by pid.
  for pid in $(pgrep -f -- "$work_dir" || true); do
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$work_dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "Building (mvn, offline when the local repository already has everything)..."
mvn_args=(-B -q -DskipTests -pl integration -am test-compile dependency:build-classpath
  -Dmdep.outputFile="$PWD/$out_dir/classpath.txt" -Dmdep.includeScope=test)
mvn -o "${mvn_args[@]}" >/dev/null 2>&1 || mvn "${mvn_args[@]}"
classpath="integration/target/test-classes:$(cat "$out_dir/classpath.txt")"

# The same JVM settings as the test runs (see surefire.argLine in pom.xml): Flink needs the opens.
opens="$(sed -n 's:.*<flink.jvm.opens>\(.*\)</flink.jvm.opens>.*:\1:p' pom.xml)"
# Flink's and Beam's warnings (long operator names, missing log files, token managers) would bury the
# table: they go to the log file below, and only errors reach the terminal.
jvm_args=(-Xmx3g -Djava.awt.headless=true -Djava.io.tmpdir="$work_dir" $opens
  -Dorg.slf4j.simpleLogger.log.org.apache.flink=error -Dorg.slf4j.simpleLogger.log.org.apache.beam=error)
if [ "${BENCH_JFR:-}" = 1 ]; then
  jvm_args+=("-XX:StartFlightRecording=filename=$out_dir/bench.jfr,settings=profile,dumponexit=true")
fi

echo "Machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
java "${jvm_args[@]}" -cp "$classpath" dev.natsio.integration.bench.Benchmarks \
  --markdown "$out_dir/benchmarks$( [[ " $* " == *" --quick "* ]] && echo -quick).md" \
  --chart "$out_dir/benchmarks$( [[ " $* " == *" --quick "* ]] && echo -quick).png" "$@" \
  2> >(tee "$out_dir/bench-stderr.log" | grep -v -E '^\s+at |^\s+\.\.\. [0-9]+ more' >&2) &
bench_pid=$!
wait "$bench_pid"
