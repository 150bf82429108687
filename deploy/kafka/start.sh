#!/usr/bin/env bash
# Start a single-node Apache Kafka (KRaft, combined broker+controller) on loopback, for dev and tests.
#
# Usage: deploy/kafka/start.sh [--port N] [--foreground]
# Env:
#   OMS_KAFKA_PORT              client port (default 9092); --port overrides
#   OMS_KAFKA_CONTROLLER_PORT   controller port (default port+1)
#   OMS_KAFKA_DATA_DIR          data dir (default <repo>/.run/kafka-<port>); formatted on first use.
#                               Holds server.properties, broker.pid, broker.log, kraft/ (log.dirs).
#   OMS_KAFKA_START_TIMEOUT     seconds to wait until the broker answers (default 60)
#   OMS_KAFKA_HEAP_OPTS         default "-Xms256m -Xmx1g"
#   OMS_KAFKA_JVM_OPTS          extra JVM options
#   OMS_KAFKA_LOG4J             log4j2 config (default deploy/kafka/log4j2.properties)
#   OMS_KAFKA_EXTRA_PROPS       extra server.properties lines (newline separated), appended last
#   OMS_PYTHON                  python with confluent_kafka for the readiness check
#                               (default <repo>/.venv/bin/python, fallback python3; if neither can
#                               import confluent_kafka, falls back to log line + TCP check)
#   JAVA                        java binary (default $JAVA_HOME/bin/java or java on PATH)
# Also: OMS_KAFKA_VERSION / OMS_CACHE_DIR are passed through to fetch.sh.
#
# Prints "bootstrap=127.0.0.1:<port>" once the broker answers. If the broker recorded in the data
# dir's PID file is already running and answering, says so and exits 0.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=deploy/kafka/common.sh
source "$HERE/common.sh"

FOREGROUND=0
PORT="${OMS_KAFKA_PORT:-9092}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --foreground|-f) FOREGROUND=1; shift ;;
    --port) PORT="$2"; shift 2 ;;
    --port=*) PORT="${1#--port=}"; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "start.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ "$PORT" =~ ^[0-9]+$ ]] || { echo "start.sh: bad port '$PORT'" >&2; exit 2; }
CPORT="${OMS_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
DATA="${OMS_KAFKA_DATA_DIR:-$REPO/.run/kafka-$PORT}"
TIMEOUT="${OMS_KAFKA_START_TIMEOUT:-60}"
HEAP_OPTS="${OMS_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
LOG4J="${OMS_KAFKA_LOG4J:-$HERE/log4j2.properties}"
BOOTSTRAP="127.0.0.1:$PORT"

if [[ -n "${JAVA:-}" ]]; then :;
elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java";
elif command -v java >/dev/null 2>&1; then JAVA="$(command -v java)";
else echo "start.sh: no Java found (need JDK/JRE 17+ on PATH or JAVA_HOME)" >&2; exit 1; fi

PY=""
for cand in "${OMS_PYTHON:-$REPO/.venv/bin/python}" python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import confluent_kafka' 2>/dev/null; then
    PY="$cand"; break
  fi
done

PIDFILE="$DATA/broker.pid"
LOGFILE="$DATA/broker.log"
PROPS="$DATA/server.properties"


# Wait until the broker answers a metadata request with itself registered; $1 = pid (may be empty).
wait_ready() {
  local pid="$1"
  if [[ -n "$PY" ]]; then
    "$PY" - "$BOOTSTRAP" "$TIMEOUT" "$pid" <<'PYEOF'
import os, sys, time
from confluent_kafka.admin import AdminClient
bootstrap, timeout, pid = sys.argv[1], float(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + timeout
admin = AdminClient({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 1000,
                     "reconnect.backoff.max.ms": 500, "log_level": 0})
err = None
while time.monotonic() < deadline:
    if pid:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            print("broker process exited", file=sys.stderr); sys.exit(3)
    try:
        md = admin.list_topics(timeout=2)
        if md.brokers:
            sys.exit(0)
    except Exception as e:  # KafkaException while the broker is still coming up
        err = e
    time.sleep(0.2)
print(f"broker did not answer within {timeout:.0f}s (last error: {err})", file=sys.stderr)
sys.exit(1)
PYEOF
  else
    # No confluent_kafka: wait for the startup log line and an open TCP port.
    local deadline=$((SECONDS + ${TIMEOUT%.*}))
    while (( SECONDS < deadline )); do
      if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then echo "broker process exited" >&2; return 3; fi
      if grep -q "Kafka Server started" "$LOGFILE" 2>/dev/null \
         && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
      sleep 0.3
    done
    echo "broker did not answer within ${TIMEOUT}s" >&2; return 1
  fi
}

fail_with_log() {
  echo "start.sh: ERROR: $1" >&2
  echo "----- last 60 lines of $LOGFILE -----" >&2
  tail -n 60 "$LOGFILE" >&2 2>/dev/null || echo "(no log file)" >&2
  echo "-------------------------------------" >&2
  exit 1
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- already running? ---------------------------------------------------------------------------
if [[ -f "$PIDFILE" ]]; then
  oldpid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if is_our_broker "$oldpid" "$PROPS"; then
    if [[ $FOREGROUND -eq 1 ]]; then
      echo "start.sh: broker already running in the background (pid $oldpid); stop it first" >&2; exit 1
    fi
    if wait_ready "$oldpid"; then
      echo "start.sh: Kafka broker already running (pid $oldpid, data $DATA)" >&2
      echo "bootstrap=$BOOTSTRAP"
      exit 0
    fi
    fail_with_log "broker pid $oldpid is running but does not answer on $BOOTSTRAP"
  fi
  rm -f "$PIDFILE"  # stale
fi
for p in "$PORT" "$CPORT"; do
  if port_in_use "$p"; then
    echo "start.sh: ERROR: port $p on 127.0.0.1 is already in use by another process" >&2; exit 1
  fi
done

# --- jars ----------------------------------------------------------------------------------------
LIB="$("$HERE/fetch.sh" | tail -n 1)"

# --- config + format -----------------------------------------------------------------------------
mkdir -p "$DATA/kraft"
touch "$DATA/.oms-kafka-data-dir"   # lets stop.sh --clean verify it only deletes what we made
cat >"$PROPS" <<PROPS_EOF
# Generated by deploy/kafka/start.sh -- single-node KRaft (combined broker+controller), tests/dev only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA/kraft
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.retention.check.interval.ms=300000
log.segment.bytes=104857600
PROPS_EOF
if [[ -n "${OMS_KAFKA_EXTRA_PROPS:-}" ]]; then printf '%s\n' "$OMS_KAFKA_EXTRA_PROPS" >>"$PROPS"; fi

if [[ ! -f "$DATA/kraft/meta.properties" ]]; then
  # Kafka cluster ids are 16 random bytes, base64url without padding (must not start with '-').
  CLUSTER_ID="-"
  while [[ "$CLUSTER_ID" == -* ]]; do
    CLUSTER_ID="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  echo "start.sh: formatting $DATA/kraft (cluster id $CLUSTER_ID)" >&2
  if ! "$JAVA" -Xmx256m -Dlog4j2.configurationFile="file:$LOG4J" -cp "$LIB/*" \
       kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$PROPS" >"$DATA/format.log" 2>&1; then
    cat "$DATA/format.log" >&2
    echo "start.sh: ERROR: kafka-storage format failed" >&2; exit 1
  fi
fi

# --- run -----------------------------------------------------------------------------------------
# shellcheck disable=SC2206
JAVA_CMD=("$JAVA" $HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
          -Djava.awt.headless=true ${OMS_KAFKA_JVM_OPTS:-}
          -Dlog4j2.configurationFile="file:$LOG4J" -Dkafka.logs.dir="$DATA/logs"
          -cp "$LIB/*" kafka.Kafka "$PROPS")

if [[ $FOREGROUND -eq 1 ]]; then
  echo "start.sh: Kafka in foreground, bootstrap=$BOOTSTRAP (Ctrl-C to stop)" >&2
  echo $$ >"$PIDFILE"
  exec "${JAVA_CMD[@]}"
fi

: >"$LOGFILE"
# setsid: own session/process group, so Ctrl-C in the caller (pytest, make) does not hit the broker.
setsid nohup "${JAVA_CMD[@]}" >>"$LOGFILE" 2>&1 </dev/null &
PID=$!
echo "$PID" >"$PIDFILE"
echo "start.sh: started Kafka pid $PID (log $LOGFILE), waiting up to ${TIMEOUT}s ..." >&2

t0=$SECONDS
if ! wait_ready "$PID"; then
  if kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true; sleep 2; kill -KILL "$PID" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  fail_with_log "Kafka did not become ready on $BOOTSTRAP"
fi
echo "start.sh: Kafka ready in $((SECONDS - t0))s" >&2
echo "bootstrap=$BOOTSTRAP"
