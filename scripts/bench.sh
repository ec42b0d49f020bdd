#!/usr/bin/env bash
# Benchmarks (not part of the tests). Prints the figures that go into the
# README's performance table.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh"
BUILD="${JUNCTION_BUILD_DIR:-$ROOT/build}"

echo "== hl7_parse: parse + serialize on one core (samples/hl7)"
taskset -c 0 "$BUILD/tests/bench_hl7_parse" "$ROOT/samples/hl7" --seconds "${BENCH_SECONDS:-4}"
