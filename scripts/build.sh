#!/usr/bin/env bash
# Configures and builds Junction (Release, ccache) into build/. Arguments are
# passed to `cmake --build` (e.g. --target junction).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${JUNCTION_BUILD_DIR:-$ROOT/build}"
JOBS="${JOBS:-$(nproc)}"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$JOBS" "$@"
