#!/usr/bin/env bash
# Kill soak: tests/integration/kill_soak.py (senders keep sending while the
# engine is SIGKILLed at random moments and started again at once; every
# acknowledged message must be in the store after each cycle and reach the
# receiver at the end) in every configuration: sync full and normal, one
# channel with one event loop and three channels with two, an empty store and
# one with a history. scripts/test.sh runs a short version through ctest.
#   SOAK_CYCLES  cycles per configuration (default 100)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh" >/dev/null
"$ROOT/scripts/build.sh" --target junction mllpload >/dev/null
BUILD="${JUNCTION_BUILD_DIR:-$ROOT/build}"
# Copies of the binaries: a rebuild during the soak cannot swap them underneath it.
BIN_DIR="$(mktemp -d)"
trap 'rm -rf "$BIN_DIR"' EXIT
cp "$BUILD/engine/app/junction" "$BUILD/tests/mllpload" "$BIN_DIR/"
export JUNCTION_BIN="$BIN_DIR/junction" MLLPLOAD="$BIN_DIR/mllpload" JUNCTION_SOURCE_DIR="$ROOT"
export SOAK_CYCLES="${SOAK_CYCLES:-100}"
failed=0
for sync in full normal; do
  for shape in "1 1" "3 2"; do
    for history in 0 100000; do
      read -r channels threads <<<"$shape"
      SOAK_SYNC=$sync SOAK_CHANNELS=$channels SOAK_THREADS=$threads SOAK_HISTORY=$history \
        /usr/bin/python3 "$ROOT/tests/integration/kill_soak.py" || failed=$((failed+1))
    done
  done
done
echo "soak: $failed configuration(s) failed"
[ "$failed" = 0 ]
