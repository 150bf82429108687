#!/usr/bin/env bash
# Install the HTTP load generator the promise bench drives, outside the repo, on demand.
#
# Usage: bench/tools.sh [hey|oha]     (default hey)
# Prints the binary's path on stdout; does nothing but print it when it is already there.
#   hey  github.com/rakyll/hey, built with `go install` (needs Go and the Go module proxy)
#   oha  github.com/hatoo/oha, built with `cargo install` (needs a Rust toolchain and crates.io)
# Env: OMS_TOOLS_DIR (default ~/.cache/oms-streams/tools), HEY_VERSION (default v0.1.5),
#      OHA_VERSION (default: the latest on crates.io)
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
      # Outside any module, so the repo is never touched; the build cache is Go's own.
      (cd "$DIR" && GOBIN="$DIR" GOFLAGS=-buildvcs=false go install "github.com/rakyll/hey@${HEY_VERSION:-v0.1.5}") >&2
    fi
    ;;
  oha)
    BIN="$DIR/bin/oha"
    if [[ ! -x "$BIN" ]]; then
      command -v cargo >/dev/null || { echo "tools.sh: oha needs cargo (https://rustup.rs)" >&2; exit 1; }
      echo "tools.sh: building oha into $DIR (a few minutes) ..." >&2
      cargo install oha --locked --root "$DIR" ${OHA_VERSION:+--version "$OHA_VERSION"} >&2
    fi
    ;;
  *)
    echo "tools.sh: unknown tool $TOOL (hey or oha)" >&2
    exit 2
    ;;
esac
echo "$BIN"
