#!/usr/bin/env bash
# Stop the Kafka broker started by deploy/kafka/start.sh.
#
# Usage: deploy/kafka/stop.sh [--port N] [--clean]
#   --clean   also delete the data dir (only if start.sh created it: it must hold .oms-kafka-data-dir)
# Env: OMS_KAFKA_PORT (default 9092), OMS_KAFKA_DATA_DIR (default <repo>/.run/kafka-<port>),
#      OMS_KAFKA_STOP_TIMEOUT (seconds between SIGTERM and SIGKILL, default 30)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=deploy/kafka/common.sh
source "$HERE/common.sh"
CLEAN=0
PORT="${OMS_KAFKA_PORT:-9092}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --clean) CLEAN=1; shift ;;
    --port) PORT="$2"; shift 2 ;;
    --port=*) PORT="${1#--port=}"; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "stop.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
DATA="${OMS_KAFKA_DATA_DIR:-$REPO/.run/kafka-$PORT}"
TIMEOUT="${OMS_KAFKA_STOP_TIMEOUT:-30}"
PIDFILE="$DATA/broker.pid"
PROPS="$DATA/server.properties"


if [[ -f "$PIDFILE" ]]; then
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if is_our_broker "$pid" "$PROPS"; then
    echo "stop.sh: stopping Kafka pid $pid (port $PORT) ..." >&2
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "stop.sh: pid $pid still alive after ${TIMEOUT}s, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    echo "stop.sh: stopped" >&2
  else
    echo "stop.sh: no running broker for pid file $PIDFILE (stale), nothing to stop" >&2
  fi
  rm -f "$PIDFILE"
else
  echo "stop.sh: no pid file at $PIDFILE, nothing to stop" >&2
fi

if [[ $CLEAN -eq 1 && -d "$DATA" ]]; then
  if [[ -f "$DATA/.oms-kafka-data-dir" ]]; then
    rm -rf "$DATA"
    echo "stop.sh: removed $DATA" >&2
  else
    echo "stop.sh: refusing to remove $DATA: not created by start.sh (no .oms-kafka-data-dir)" >&2
    exit 1
  fi
fi
