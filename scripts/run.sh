#!/usr/bin/env bash
# The main job: installs what is missing, builds, and starts `junction run` on
# the shipped channels (embedded SQLite store, console on the admin port).
# Extra arguments go to `junction run` (e.g. --config my.yaml).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh" --target junction
cd "$ROOT"
exec "$ROOT/build/engine/app/junction" run "$@"
