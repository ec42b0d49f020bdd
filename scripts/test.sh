#!/usr/bin/env bash
# Builds Junction (compiler warnings are errors) and runs every test: unit and
# integration tests through ctest, then the tests of the HL7, store and MLLP
# libraries (and the HL7 mutation fuzz) again under ASan/UBSan, then builds a
# clone of the repository placed in an empty folder, so that anything the build
# takes from outside the repository fails here.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JOBS="${JOBS:-$(nproc)}"
export JUNCTION_WERROR=ON
# ccache hits across build folders (build/, build-asan/, the package's, a clone's).
export CCACHE_BASEDIR="$ROOT"

"$ROOT/scripts/setup.sh"

echo "== build (Release)"
"$ROOT/scripts/build.sh"

echo "== tests"
ctest --test-dir "$ROOT/build" --output-on-failure -j "$JOBS"

echo "== HL7, store and MLLP libraries under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S "$ROOT" -B "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DJUNCTION_SANITIZE=ON -DJUNCTION_SANITIZER_SET=ON -DJUNCTION_WERROR=ON >/dev/null
cmake --build "$ROOT/build-asan" -j "$JOBS"
# Except the listener test that runs out of file descriptors: the sanitizers'
# runtime needs descriptors of its own (its check of a vptr probes memory through
# a pipe) and reports false errors without them. The Release run above has it.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$ROOT/build-asan" --output-on-failure -j "$JOBS" -E "out of file descriptors"

echo "== a clone in an empty folder builds and runs on its own"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  EMPTY="$(mktemp -d)"
  trap 'rm -rf "$EMPTY"' EXIT
  git clone -q "$ROOT" "$EMPTY/junction"
  "$EMPTY/junction/scripts/build.sh"
  ctest --test-dir "$EMPTY/junction/build" --output-on-failure -R "integration: cli"
else
  echo "not a git checkout: skipped"
fi
