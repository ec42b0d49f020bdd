#!/usr/bin/env bash
# Builds the Debian package junction_<version>_<arch>.deb: a Release build of the
# junction binary in its own build folder (build-package/, or
# JUNCTION_PACKAGE_BUILD_DIR), installed under /usr with the config in
# /etc/junction, the systemd unit and the maintainer scripts (packaging/), packed
# by CPack. Prints the package's path as its last line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${JUNCTION_PACKAGE_BUILD_DIR:-$ROOT/build-package}"
JOBS="${JOBS:-$(nproc)}"
export CCACHE_BASEDIR="$ROOT"
"$ROOT/scripts/setup.sh"
OPTS=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DJUNCTION_PACKAGE=ON)
# The compile flags of scripts/build.sh (JUNCTION_WERROR as there), so that ccache
# serves the objects of build/ and only the first build here compiles.
if [ -n "${JUNCTION_WERROR:-}" ]; then OPTS+=(-DJUNCTION_WERROR="$JUNCTION_WERROR"); fi
cmake -S "$ROOT" -B "$BUILD" "${OPTS[@]}" >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target junction
rm -f "$BUILD"/junction_*.deb
(cd "$BUILD" && cpack -G DEB --config CPackConfig.cmake)
debs=("$BUILD"/junction_*.deb)
if [ ${#debs[@]} -ne 1 ] || [ ! -f "${debs[0]}" ]; then
  echo "package: cpack made no junction_*.deb in $BUILD" >&2
  exit 1
fi
echo "${debs[0]}"
