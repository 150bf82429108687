#!/usr/bin/env bash
# The one-command demo (`make demo`): a local Kafka broker, one oms worker with its HTTP API, a
# simulated retail day (ERP, POS, supplier) and a live view of webshop availability.
# Ctrl-C stops everything this script started.
#
# Env: OMS_KAFKA_PORT   broker port (default 9092; the controller uses port+1)
#      OMS_DEMO_NETWORK nl (default: deploy/demo/network.yaml) or a US state code (TX, WI, ...): that
#                       state's real Walmart DCs and stores from ../shared/data/network (when the shared
#                       data is there; else the NL network, with a message)
#      OMS_DEMO_STORES / OMS_DEMO_DCS  stores and DCs of a state network (default 8 / 2)
#      OMS_DEMO_RATE    simulated stock events per second on an average day (default 0.001 per store,
#                       0.005 on NL: stores sell at a real store's rate, about 9 bike lights a store a
#                       day, so the store demand forecasts make sense; till sales follow real M5 stores'
#                       weekdays and months, deploy/demo/demand_shape.json; 20 gives a busy feed, but a
#                       day's sales a minute: after local midnight the forecasts then protect every
#                       store unit and click & collect shows 0)
#      OMS_DEMO_DEMAND  the demand shape file, or "flat" (default deploy/demo/demand_shape.json)
#      OMS_DEMO_HOURS   the hour-of-day shape file, or "flat" (default deploy/demo/hourly_shape.json:
#                       webshop orders by the hour of real e-commerce orders, till sales by a store
#                       curve inside each store's opening hours; the rates above are the day's mean)
#      OMS_DEMO_LATE_PICKS share of allocations picked after their latest pick start (default 0.05;
#                       the first whose pick is due at once, a click & collect from a store's shelf, too)
#      OMS_DEMO_SPEED   business time runs this many times as fast as the wall clock, for the worker
#                       and the simulators alike (OMS_CLOCK, docs/demo-clock.md): 60 plays a day in
#                       24 minutes; rates and orders per minute are then per business second/minute.
#                       Default 1: no OMS_CLOCK, the wall clock
#      OMS_DEMO_START   with OMS_DEMO_SPEED: business start, ISO 8601 with its offset (default 06:00
#                       today in the network's zone)
#      OMS_DEMO_ORDERS_PER_MINUTE webshop orders per minute (default 4; with OMS_DEMO_SPEED, 4/speed a
#                       business minute, still about 4 a wall minute)
#      OMS_DEMO_TIME_SCALE multiplies the simulated pick/pack/handover/transit delays (default 1: seconds)
#      OMS_DEMO_WEB_PORT worker HTTP port (default 6066)
#      OMS_PROMISE_SIGNING_KEYS the worker's promise token keys (default: a random key made for the
#                       run; the webshop places every order with its option's token)
# Logs: .run/demo-worker.log, .run/demo-simulator.log, .run/demo-orders.log, .run/demo-broker.log (copied on exit).
# On exit it writes the day report of the run (`oms report`) to .run/demo-report.html and audits the
# run's topics (`oms audit`, .run/demo-audit.txt), printing the audit's verdict.
# A broker the demo starts is stopped on exit, and its data removed when the demo created it
# (stop.sh --clean), so every demo starts from an empty network; a running broker is used as is.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

PORT="${OMS_KAFKA_PORT:-9092}"
WEB_PORT="${OMS_DEMO_WEB_PORT:-6066}"
ORDERS_PER_MINUTE="${OMS_DEMO_ORDERS_PER_MINUTE:-4}"
TIME_SCALE="${OMS_DEMO_TIME_SCALE:-1}"
REGION="${OMS_DEMO_NETWORK:-nl}"
DEMAND="${OMS_DEMO_DEMAND:-deploy/demo/demand_shape.json}"
HOURS="${OMS_DEMO_HOURS:-deploy/demo/hourly_shape.json}"
LATE_PICKS="${OMS_DEMO_LATE_PICKS:-0.05}"
OMS=(.venv/bin/python -m oms_streams.cli)
if [[ -x .venv/bin/oms ]]; then OMS_SHOWN=".venv/bin/oms"; else OMS_SHOWN="${OMS[*]}"; fi
RUN=.run
BROKER_DATA="${OMS_KAFKA_DATA_DIR:-$REPO/.run/kafka-$PORT}"
mkdir -p "$RUN"

export OMS_KAFKA_PORT="$PORT"
export OMS_KAFKA_BOOTSTRAP="127.0.0.1:$PORT"
export OMS_TOPIC_PREFIX=""
export OMS_DATA_DIR="$RUN/demo-worker"
export OMS_WEB_HOST=127.0.0.1
export OMS_WEB_PORT="$WEB_PORT"

if [[ ! -x .venv/bin/python ]]; then
  echo "demo: no .venv here; run 'make demo' (or 'make install' first)" >&2; exit 1
fi
# Placements must bring back the promise token POST /promise signed (docs/promise-tokens.md); a key
# made for this run: only this run's worker verifies it, and it survives the worker's restarts.
if [[ -z "${OMS_PROMISE_SIGNING_KEYS:-}" ]]; then
  OMS_PROMISE_SIGNING_KEYS="demo-$(date +%s)=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))')"
  export OMS_PROMISE_SIGNING_KEYS
fi

if (exec 3<>"/dev/tcp/127.0.0.1/$WEB_PORT") 2>/dev/null; then
  echo "demo: port $WEB_PORT is in use (another worker?); stop it or set OMS_DEMO_WEB_PORT" >&2; exit 1
fi

# --- network -------------------------------------------------------------------------------------
# NL: the hand-made demo network. A US state: its real sites, converted to the worker's config.
NETWORK=deploy/demo/network.yaml
NETWORK_SHOWN="deploy/demo/network.yaml: DC-NORTH, DC-SOUTH, five stores, SUPPLIER-ACME"
STORES=5
TRY_DESTINATION='"lat": 52.0894, "lon": 5.1100, "region": "NL-UT", "postal_code": "3511 AB"'
if [[ "${REGION,,}" != "nl" ]]; then
  out="$RUN/demo-network-${REGION^^}.yaml"
  rc=0
  made="$(.venv/bin/python -m oms_streams.tools.demo_network --region "$REGION" --out "$out" \
    --stores "${OMS_DEMO_STORES:-8}" --dcs "${OMS_DEMO_DCS:-2}")" || rc=$?
  if [[ $rc -eq 3 ]]; then
    echo "demo: OMS_DEMO_NETWORK=$REGION needs ../shared/data/network/walmart_openings_1962_2006.csv," \
      "which this checkout does not have; running on the NL demo network instead" >&2
  elif [[ $rc -ne 0 ]]; then
    echo "demo: could not build the $REGION network (OMS_DEMO_NETWORK is nl or a US state code)" >&2
    exit 1
  else
    NETWORK="$out"
    STORES="$(awk '$1 == "stores" {print $2}' <<<"$made")"
    NETWORK_SHOWN="$out: $(head -n 1 <<<"$made" | sed 's/^wrote [^:]*: //'), real Walmart sites of ${REGION^^}"
    TRY_DESTINATION="$(awk '$1 == "try" {printf "\"lat\": %s, \"lon\": %s, \"region\": \"%s\"", $2, $3, $4}' <<<"$made")"
  fi
fi
RATE="${OMS_DEMO_RATE:-$(awk -v n="$STORES" 'BEGIN {printf "%g", 0.001 * n}')}"

# --- clock -------------------------------------------------------------------------------------
# One business clock for every process below (worker, simulators, watch, report, audit).
SPEED="${OMS_DEMO_SPEED:-1}"
CLOCK_SHOWN="the wall clock"
ORDERS_SHOWN="$ORDERS_PER_MINUTE webshop orders a minute"
if [[ "$SPEED" != "1" ]]; then
  if ! OMS_CLOCK="$(.venv/bin/python -m oms_streams.tools.demo_clock --network "$NETWORK" --speed "$SPEED" \
    ${OMS_DEMO_START:+--start "$OMS_DEMO_START"})"; then
    exit 1
  fi
  export OMS_CLOCK
  # Orders per business minute: by default as many a wall minute as without the clock (4), which at
  # 60 x is about 100 webshop orders a business day.
  [[ -n "${OMS_DEMO_ORDERS_PER_MINUTE:-}" ]] || ORDERS_PER_MINUTE="$(awk -v s="$SPEED" 'BEGIN {printf "%g", 4 / s}')"
  CLOCK_SHOWN="OMS_CLOCK=$OMS_CLOCK: $SPEED x the wall clock, from ${OMS_CLOCK%%@*}; a business day
             takes $(awk -v s="$SPEED" 'BEGIN {printf "%g", 1440 / s}') wall minutes"
  ORDERS_SHOWN="$(awk -v m="$ORDERS_PER_MINUTE" 'BEGIN {printf "%g", m * 1440}') webshop orders a business day"
fi

BROKER_STARTED=0
BROKER_FRESH=0
WORKER_PID=""
SIM_PID=""
DAY_PID=""
CLEANED=0

stop_pid() {  # pid, name: SIGTERM, wait up to 20 s, then SIGKILL
  local pid="$1" name="$2" i
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  echo "demo: stopping $name (pid $pid) ..." >&2
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "demo: $name did not stop in 20 s, killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

checked_counts() {  # "15 orders, 18 allocations, 66 stock positions checked" from its checked: line
  grep -m 1 '^checked:' "$RUN/demo-audit.txt" |
    sed -E 's/.*positions ([0-9]+(,[0-9]{3})*).*orders_placed ([0-9]+(,[0-9]{3})*).*allocations ([0-9]+(,[0-9]{3})*).*/\3 orders, \5 allocations, \1 stock positions checked/'
}

audit_run() {  # the audit of the run's topics; its verdict on the terminal, the whole report in a file
  local stopped_at="$1" rc=0 settle
  # Orders placed in the last seconds before the stop were in flight when the worker stopped.
  settle=$(($(date +%s) - stopped_at + 10))
  "${OMS[@]}" audit --settle-s "$settle" >"$RUN/demo-audit.txt" 2>&1 || rc=$?
  case $rc in
    0) echo "demo: audit: $(tail -n 1 "$RUN/demo-audit.txt") ($(checked_counts); $RUN/demo-audit.txt)" >&2 ;;
    1) echo "demo: audit: $(tail -n 1 "$RUN/demo-audit.txt"): see $RUN/demo-audit.txt" >&2 ;;
    *) echo "demo: audit could not read the topics (see $RUN/demo-audit.txt)" >&2 ;;
  esac
}

cleanup() {
  [[ $CLEANED -eq 1 ]] && return
  CLEANED=1
  trap '' INT TERM  # a second Ctrl-C must not cut the cleanup short
  local stopped_at
  stopped_at=$(date +%s)
  echo >&2
  stop_pid "$DAY_PID" "order simulator"
  [[ -n "$DAY_PID" && -s "$RUN/demo-orders.log" ]] && echo "demo: orders: $(tail -n 1 "$RUN/demo-orders.log")" >&2
  stop_pid "$SIM_PID" "simulator"
  stop_pid "$WORKER_PID" "worker"
  if [[ -n "$WORKER_PID" ]]; then  # the day report, from the topics, while the broker is still up
    if "${OMS[@]}" report --out "$RUN/demo-report.html" >"$RUN/demo-report.log" 2>&1; then
      echo "demo: day report written to $RUN/demo-report.html" >&2
    else
      echo "demo: no day report (see $RUN/demo-report.log)" >&2
    fi
    audit_run "$stopped_at"
  fi
  if [[ $BROKER_STARTED -eq 1 ]]; then
    cp "$BROKER_DATA/broker.log" "$RUN/demo-broker.log" 2>/dev/null || true
    if [[ $BROKER_FRESH -eq 1 ]]; then
      # Made by this demo: its data goes with it, so the next demo starts from an empty network.
      bash deploy/kafka/stop.sh --clean || true
      rm -rf "$OMS_DATA_DIR"
    else
      bash deploy/kafka/stop.sh || true
    fi
  fi
  echo "demo: stopped. Logs: $RUN/demo-*.log" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- broker ------------------------------------------------------------------------------------
echo "demo: starting Kafka on 127.0.0.1:$PORT (first run downloads the broker jars) ..." >&2
if [[ -f "$BROKER_DATA/broker.pid" ]] && kill -0 "$(cat "$BROKER_DATA/broker.pid" 2>/dev/null)" 2>/dev/null; then
  echo "demo: using the Kafka broker already running on port $PORT (left running on exit)" >&2
  if [[ -n "${OMS_CLOCK:-}" ]]; then
    echo "demo: warning: OMS_DEMO_SPEED on a broker that holds an earlier run's events: business time" \
      "may go back against them (stop it, or use a fresh OMS_KAFKA_PORT)" >&2
  fi
else
  BROKER_STARTED=1  # set before it starts: a Ctrl-C during start-up still stops it
  [[ -d "$BROKER_DATA/kraft" ]] || BROKER_FRESH=1
  # A broker of our own starts from its data dir (empty unless 'make broker-up' left data there);
  # the worker's local state is only a cache of the broker's changelogs, so it starts empty too.
  rm -rf "$OMS_DATA_DIR"
fi
start_log="$RUN/demo-broker-start.log"
if ! bash deploy/kafka/start.sh >"$start_log" 2>&1; then
  cat "$start_log" >&2
  exit 1
fi

# --- topics and network ------------------------------------------------------------------------
# (librdkafka warns while a just-started broker loads its coordinators: keep that in a log.)
for step in "topics create" "config publish $NETWORK"; do
  # shellcheck disable=SC2086
  if ! "${OMS[@]}" $step 2>"$RUN/demo-setup.log"; then
    cat "$RUN/demo-setup.log" >&2
    exit 1
  fi
done

# --- worker ------------------------------------------------------------------------------------
mkdir -p "$OMS_DATA_DIR"
supervise_worker() {
  # As a supervisor (systemd, Kubernetes, compose's restart policy) would: a worker that stopped
  # because a record was not delivered (exit 75) is started again; it reads again from its last
  # commit. Any other exit ends the demo.
  local child rc
  trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' TERM INT
  while true; do
    "${OMS[@]}" worker &
    child=$!
    wait "$child" && rc=0 || rc=$?
    [[ $rc -eq 75 ]] || exit "$rc"
    echo "demo: the worker stopped for a restart (a record was not delivered); starting it again" >&2
    sleep 1
  done
}
echo "demo: starting the worker (log $RUN/demo-worker.log) ..." >&2
supervise_worker >"$RUN/demo-worker.log" 2>&1 &
WORKER_PID=$!
for ((i = 0; i < 240; i++)); do
  if curl -s --max-time 2 "http://127.0.0.1:$WEB_PORT/health" 2>/dev/null | grep -Eq '"ready": *true'; then
    break
  fi
  if ! kill -0 "$WORKER_PID" 2>/dev/null; then
    echo "demo: the worker exited; last lines of $RUN/demo-worker.log:" >&2
    tail -n 40 "$RUN/demo-worker.log" >&2
    exit 1
  fi
  sleep 0.5
done
if ! curl -s --max-time 2 "http://127.0.0.1:$WEB_PORT/health" | grep -Eq '"ready": *true'; then
  echo "demo: the worker was not ready after 120 s; see $RUN/demo-worker.log" >&2
  exit 1
fi

# --- simulator ---------------------------------------------------------------------------------
"${OMS[@]}" simulate --rate "$RATE" --network "$NETWORK" --demand "$DEMAND" --hours "$HOURS" >"$RUN/demo-simulator.log" 2>&1 &
SIM_PID=$!

# Webshop orders, their fulfilment, carrier deliveries, cancellations and returns, through the
# worker's HTTP API and the public topics. Its stderr stays on the terminal: the order ids to try.
# On a fresh broker the orders are ORDER-1, ORDER-2, ...; on a reused one they get the run's time.
ORDER_PREFIX="ORDER-"
[[ $BROKER_FRESH -eq 1 ]] || ORDER_PREFIX="ORDER-$(date +%H%M%S)-"
"${OMS[@]}" demo day --web-url "http://127.0.0.1:$WEB_PORT" --network "$NETWORK" \
  --orders-per-minute "$ORDERS_PER_MINUTE" --time-scale "$TIME_SCALE" --order-prefix "$ORDER_PREFIX" \
  --late-picks "$LATE_PICKS" --hours "$HOURS" >"$RUN/demo-orders.log" &
DAY_PID=$!

cat >&2 <<BANNER

  oms-streams demo is running
  ---------------------------
  Kafka      127.0.0.1:$PORT           (broker log: $BROKER_DATA/broker.log)
  worker     http://127.0.0.1:$WEB_PORT  (log: $RUN/demo-worker.log)
  simulator  $RATE stock events/s on an average day: ERP counts and receipts, POS sales, transfers,
             returns, damage, and a SUPPLIER-ACME snapshot every ~10 s; till sales follow real stores'
             weekdays and months ($DEMAND) and the hours of the day, only while a store
             is open ($HOURS)   (log: $RUN/demo-simulator.log)
  orders     about $ORDERS_SHOWN on average over the day, by the hour of day
             of real webshop orders (few at night) via POST /promise; a simulated WMS, store
             app and carrier pick, pack, ship and deliver them (seconds, with faults); some are
             cancelled, some returned; the store is behind on the first click & collect order, so
             it goes at risk (so do a share $LATE_PICKS of the others, when their pick falls due)
             (log: $RUN/demo-orders.log)
  network    $NETWORK_SHOWN
  time       $CLOCK_SHOWN

  Try, in another terminal:
    curl 'localhost:$WEB_PORT/availability/SKU-BIKE-LIGHT?channel=webshop'
    curl 'localhost:$WEB_PORT/availability/SKU-HELMET?channel=click_and_collect'
    curl -X POST localhost:$WEB_PORT/promise -H 'Content-Type: application/json' \
      -d '{"cart": [{"sku": "SKU-BIKE-LIGHT", "quantity": 2}, {"sku": "SKU-HELMET", "quantity": 1}],
           "destination": {$TRY_DESTINATION}}'
    curl localhost:$WEB_PORT/orders/${ORDER_PREFIX}1     (ids of placed orders are printed below)
    open http://localhost:$WEB_PORT/console/at-risk     (orders at risk, live)
    curl localhost:$WEB_PORT/metrics
    curl localhost:$WEB_PORT/openapi.json
    OMS_KAFKA_BOOTSTRAP=$OMS_KAFKA_BOOTSTRAP $OMS_SHOWN watch SKU-KAYAK --channel marketplace
    edit $NETWORK, then (applies without a restart):
    OMS_KAFKA_BOOTSTRAP=$OMS_KAFKA_BOOTSTRAP $OMS_SHOWN config publish $NETWORK

  Below: webshop availability as the worker publishes it. Ctrl-C stops everything.

BANNER

# --- watch (foreground) ------------------------------------------------------------------------
"${OMS[@]}" watch --channel webshop
