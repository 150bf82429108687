#!/usr/bin/env bash
# Install the HTTP load generator the promise bench drives (hey), outside the repo, on demand.
#
# Usage: bench/tools.sh [hey]
# Prints the binary's path on stdout; only prints it when it is already there.
#   hey  github.com/rakyll/hey, built with `go install` (needs Go and the Go module proxy)
# Env: OMS_TOOLS_DIR (default ~/.cache/oms-streams/tools), HEY_VERSION (default v0.1.5)
set -euo pipefail

TOOL="${1:-hey}"
DIR="${OMS_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oms-streams/tools}"
mkdir -p "$DIR"

case "$TOOL" in
  hey)
    BIN="$DIR/hey"
    if [[ ! -x "$BIN" ]]; then
      command -v go >/dev/null || { echo "tools.sh: hey needs Go (https://go.dev/dl/)" >&2; exit 1; }
      echo "tools.sh: building hey ${HEY_VERSION:-v0.1.5} into $DIR ..." >&2
      # Run outside the repo (no go.mod around): `go install pkg@version` builds it on its own.
      (cd "$DIR" && GOBIN="$DIR" GOFLAGS=-buildvcs=false go install "github.com/rakyll/hey@${HEY_VERSION:-v0.1.5}") >&2
    fi
    ;;
  *)
    echo "tools.sh: unknown tool $TOOL (only hey)" >&2
    exit 2
    ;;
esac
echo "$BIN"
