#!/usr/bin/env bash
# Installs what Junction needs to build, run and test, from Debian packages only.
# Safe to run again: it installs only what is missing, with one apt-get update.
set -euo pipefail

PACKAGES=(
  cmake g++ make ccache pkg-config git
  libpoco-dev libssl-dev libxerces-c-dev libdcmtk-dev dcmtk libyaml-cpp-dev liblua5.4-dev
  catch2 libsqlite3-dev libpq-dev
  python3 python3-hl7   # test peer: python-hl7's MLLP client and server
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js runs the independent DICOM test peer (dcmjs-dimse); any installed
# node/npm will do, otherwise Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm test peers, pinned by tests/node/package-lock.json.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -d "$ROOT/tests/node/node_modules" ]; then
  echo "setup: npm ci in tests/node"
  (cd "$ROOT/tests/node" && npm ci --no-audit --no-fund)
fi
