#!/usr/bin/env bash
# Builds Junction and runs every test: unit and integration tests through ctest,
# then the tests of the HL7, store and MLLP libraries (and the HL7 mutation fuzz)
# again under ASan/UBSan.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JOBS="${JOBS:-$(nproc)}"

"$ROOT/scripts/setup.sh"

echo "== build (Release)"
"$ROOT/scripts/build.sh"

echo "== tests"
ctest --test-dir "$ROOT/build" --output-on-failure -j "$JOBS"

echo "== HL7, store and MLLP libraries under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S "$ROOT" -B "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DJUNCTION_SANITIZE=ON -DJUNCTION_SANITIZER_SET=ON >/dev/null
cmake --build "$ROOT/build-asan" -j "$JOBS"
# Except the listener test that runs out of file descriptors: the sanitizers'
# runtime needs descriptors of its own (its check of a vptr probes memory through
# a pipe) and reports false errors without them. The Release run above has it.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$ROOT/build-asan" --output-on-failure -j "$JOBS" -E "out of file descriptors"
