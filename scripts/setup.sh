#!/usr/bin/env bash
# Installs what Junction needs to build, run and test, from Debian packages only.
# Safe to run again: it installs only what is missing, with one apt-get update.
set -euo pipefail

PACKAGES=(
  cmake g++ make ccache pkg-config git
  libpoco-dev libssl-dev libxerces-c-dev libdcmtk-dev dcmtk libyaml-cpp-dev liblua5.4-dev
  catch2 libsqlite3-dev zlib1g-dev liburing-dev
  python3 python3-hl7   # test peer: python-hl7's MLLP client and server
  python3-pydicom       # DICOM sample files (CT, MR, JPEG 2000, RLE ...) for the dicom tests
  orthanc orthanc-dicomweb  # test peer: the image archive, with its DICOMweb plugin
  dicom3tools           # dciodvfy checks the DICOM instances Junction builds (reports)
  nodejs                # test peers: dcmjs-dimse, puppeteer-core (tests/node)
  chromium              # the console's browser tests (headless, driven by puppeteer-core)
  dpkg-dev file         # scripts/package.sh: dpkg-shlibdeps computes the package's Depends
)

missing=()
# npm comes with some Node.js builds (nodesource) and conflicts with Debian's npm there.
if ! command -v npm >/dev/null 2>&1; then PACKAGES+=(npm); fi
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Node.js test peers (tests/node: dcmjs-dimse, puppeteer-core), from the npm registry, pinned by
# package-lock.json; again when a package of the lock file is missing. Puppeteer drives Debian's
# chromium: it downloads no browser of its own.
NODE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/node"
if [ -f "$NODE_DIR/package-lock.json" ] && ! (cd "$NODE_DIR" && npm ls --depth=0 >/dev/null 2>&1); then
  echo "setup: npm ci in tests/node"
  (cd "$NODE_DIR" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi
