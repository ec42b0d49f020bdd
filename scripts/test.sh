#!/usr/bin/env bash
# Builds Junction and runs every test: unit and integration tests through ctest,
# then the HL7 library's tests and mutation fuzz again under ASan/UBSan.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JOBS="${JOBS:-$(nproc)}"

"$ROOT/scripts/setup.sh"

echo "== build (Release)"
"$ROOT/scripts/build.sh"

echo "== tests"
ctest --test-dir "$ROOT/build" --output-on-failure -j "$JOBS"

echo "== HL7 library under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S "$ROOT" -B "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DJUNCTION_SANITIZE=ON -DJUNCTION_HL7_ONLY=ON >/dev/null
cmake --build "$ROOT/build-asan" -j "$JOBS"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$ROOT/build-asan" --output-on-failure -j "$JOBS"
