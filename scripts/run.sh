#!/usr/bin/env bash
# The main job: installs what is missing, builds, and starts `junction run` on
# the shipped channels with the embedded SQLite store.
# Extra arguments go to `junction run` (e.g. --config my.yaml).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh" --target junction
BIN_DIR="${JUNCTION_BUILD_DIR:-$ROOT/build}/engine/app"
cat <<MSG
junction: the binary is $BIN_DIR/junction
  to call it as 'junction' from another shell:  export PATH="$BIN_DIR:\$PATH"
  then, from $ROOT:  junction hl7 send 127.0.0.1:6661 samples/hl7/orm_o01_nw.hl7
MSG
cd "$ROOT"
exec "$BIN_DIR/junction" run "$@"
