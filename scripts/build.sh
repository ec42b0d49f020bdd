#!/usr/bin/env bash
# Configures and builds Junction (Release, ccache) into build/. Arguments are
# passed to `cmake --build` (e.g. --target junction). JUNCTION_BUILD_DIR names
# another build folder; JUNCTION_WERROR=ON turns compiler warnings into errors.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${JUNCTION_BUILD_DIR:-$ROOT/build}"
JOBS="${JOBS:-$(nproc)}"
# ccache hits across checkouts in other folders (paths below ROOT are hashed relative).
export CCACHE_BASEDIR="$ROOT"
OPTS=(-DCMAKE_BUILD_TYPE=Release)
if [ -n "${JUNCTION_WERROR:-}" ]; then OPTS+=(-DJUNCTION_WERROR="$JUNCTION_WERROR"); fi
cmake -S "$ROOT" -B "$BUILD" "${OPTS[@]}" >/dev/null
cmake --build "$BUILD" -j "$JOBS" "$@"
