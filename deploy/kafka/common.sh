# Shared by start.sh and stop.sh (sourced, not run).

# is_our_broker PID PROPS: PID is alive and is a kafka.Kafka JVM running that server.properties.
# (A pattern match, not `tr | grep -q`, which fails under pipefail when grep exits early.)
is_our_broker() {
  local pid="$1" props="$2"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null \
    && [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"kafka.Kafka $props"* ]]
}
