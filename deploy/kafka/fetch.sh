#!/usr/bin/env bash
# Resolve an Apache Kafka broker (KRaft) + log4j2 backend from Maven Central into
#   ${OMS_CACHE_DIR:-$HOME/.cache/oms-streams}/kafka-<version>/lib
# and print that lib directory as the last line on stdout (all Maven output goes to stderr).
#
# Idempotent: a marker file (lib/.complete) records the Kafka version and the sha256 of pom.xml;
# when it matches, nothing is resolved again. Resolution goes to a temp dir that is renamed into
# place only on success, so an interrupted run never leaves a half-filled lib/.
#
# Env: OMS_KAFKA_VERSION (default 4.1.1), OMS_CACHE_DIR, MVN (default mvn), OMS_MVN_ARGS (extra args).
# Flags: --force  re-resolve even if the marker matches.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="${OMS_KAFKA_VERSION:-4.1.1}"
CACHE_DIR="${OMS_CACHE_DIR:-$HOME/.cache/oms-streams}"
DEST="$CACHE_DIR/kafka-$KAFKA_VERSION"
LIB="$DEST/lib"
MVN="${MVN:-mvn}"
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
FORCE=0
for a in "$@"; do
  case "$a" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "fetch.sh: unknown argument: $a" >&2; exit 2 ;;
  esac
done

pom_sha="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
want_marker="kafka=$KAFKA_VERSION pom=$pom_sha"

is_complete() {
  [[ -f "$LIB/.complete" ]] && [[ "$(cat "$LIB/.complete")" == "$want_marker" ]] \
    && compgen -G "$LIB/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null
}

if [[ $FORCE -eq 0 ]] && is_complete; then
  echo "$LIB"
  exit 0
fi

mkdir -p "$DEST"
# Serialise concurrent fetches (parallel CI jobs / pytest sessions) on the same cache dir.
exec 9>"$DEST/.fetch.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if [[ $FORCE -eq 0 ]] && is_complete; then  # someone else finished while we waited
  echo "$LIB"
  exit 0
fi

if ! command -v "$MVN" >/dev/null 2>&1; then
  echo "fetch.sh: Maven ('$MVN') not found; install Maven 3.6+ (and a JDK 17+) to fetch Kafka $KAFKA_VERSION" >&2
  exit 1
fi

echo "fetch.sh: resolving Kafka $KAFKA_VERSION from Maven Central into $LIB ..." >&2
TMP="$(mktemp -d "$DEST/lib.tmp.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
MVN_LOG="$DEST/mvn.log"
# shellcheck disable=SC2086
if ! "$MVN" -B --no-transfer-progress -Dstyle.color=never -f "$HERE/pom.xml" \
     -Dkafka.version="$KAFKA_VERSION" \
     ${OMS_MVN_ARGS:-} \
     "$DEP_PLUGIN:copy-dependencies" \
     -DincludeScope=runtime -DoutputDirectory="$TMP" >"$MVN_LOG" 2>&1; then
  tail -n 40 "$MVN_LOG" >&2
  echo "fetch.sh: Maven resolution failed (full log: $MVN_LOG)" >&2
  exit 1
fi

if ! compgen -G "$TMP/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; then
  echo "fetch.sh: Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing from $TMP" >&2
  exit 1
fi
# Guard against the SLF4J 1.7 / slf4j2-binding mismatch that silently disables broker logging.
if compgen -G "$TMP/slf4j-api-1.*.jar" >/dev/null; then
  echo "fetch.sh: resolved slf4j-api 1.x, which does not bind to log4j-slf4j2-impl; fix pom.xml" >&2
  exit 1
fi
echo "$want_marker" >"$TMP/.complete"
rm -rf "$LIB"
mv "$TMP" "$LIB"
trap - EXIT
echo "fetch.sh: $(ls "$LIB"/*.jar | wc -l) jars in $LIB" >&2
echo "$LIB"
