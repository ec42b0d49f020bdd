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

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
