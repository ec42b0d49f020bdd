#!/usr/bin/env bash
# The main job: installs what is missing, builds, and starts `junction run` on
# the shipped channels with the embedded SQLite store.
# Extra arguments go to `junction run` (e.g. --config my.yaml).
#
# --with-orthanc (first argument): also starts a local Orthanc (the Debian
# package, with its DICOMweb plugin) on HTTP port 8042 and DICOM port 4242
# (AE ORTHANC, user junction, password junction), its files in var/orthanc/,
# names it `main` for Junction, and enables the shipped channel that needs only
# it: orthanc-study-completed (a study stable in Orthanc completes its worklist
# item and the RIS gets an ORM^O01 CM). The engine then runs from
# var/with-orthanc/ (its own junction.yaml and copies of the channels).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WITH_ORTHANC=0
if [ "${1:-}" = "--with-orthanc" ]; then
  WITH_ORTHANC=1
  shift
fi
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh" --target junction
BIN_DIR="${JUNCTION_BUILD_DIR:-$ROOT/build}/engine/app"
cat <<MSG
junction: the binary is $BIN_DIR/junction
  to call it as 'junction' from another shell:  export PATH="$BIN_DIR:\$PATH"
  then, from $ROOT:  junction hl7 send 127.0.0.1:6661 samples/hl7/orm_o01_nw.hl7
MSG
cd "$ROOT"
if [ "$WITH_ORTHANC" = 0 ]; then
  exec "$BIN_DIR/junction" run "$@"
fi

ORTHANC_DIR="$ROOT/var/orthanc"
RUN_DIR="$ROOT/var/with-orthanc"
mkdir -p "$ORTHANC_DIR" "$RUN_DIR/channels"
cat > "$ORTHANC_DIR/orthanc.json" <<JSON
{
  "Name": "junction-demo",
  "StorageDirectory": "$ORTHANC_DIR/storage",
  "IndexDirectory": "$ORTHANC_DIR/storage",
  "HttpPort": 8042, "DicomPort": 4242, "DicomAet": "ORTHANC",
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": true, "RegisteredUsers": { "junction": "junction" },
  "StableAge": 5,
  "Plugins": [ "/usr/share/orthanc/plugins/libOrthancDicomWeb.so" ],
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/" }
}
JSON
/usr/sbin/Orthanc "$ORTHANC_DIR/orthanc.json" > "$ORTHANC_DIR/orthanc.log" 2>&1 &
ORTHANC_PID=$!
trap 'kill $ORTHANC_PID 2>/dev/null; wait $ORTHANC_PID 2>/dev/null' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/8042) 2>/dev/null; then break; fi
  if ! kill -0 $ORTHANC_PID 2>/dev/null; then
    echo "run.sh: Orthanc did not start; its log:" >&2
    tail -20 "$ORTHANC_DIR/orthanc.log" >&2
    exit 1
  fi
  sleep 0.1
done

# The engine's folder: the shipped config with the Orthanc server, the shipped
# channels with absolute paths (scripts from transforms/, files under var/).
sed -e "s|path: var/|path: $ROOT/var/|" "$ROOT/junction.yaml" > "$RUN_DIR/junction.yaml"
cat >> "$RUN_DIR/junction.yaml" <<YAML
orthanc:
  main: { url: "http://127.0.0.1:8042", username: junction, password: junction }
YAML
for f in "$ROOT"/channels/*.yaml; do
  sed -e "s|script: transforms/|script: $ROOT/transforms/|" -e "s|directory: var/|directory: $ROOT/var/|" "$f" \
    > "$RUN_DIR/channels/$(basename "$f")"
done
sed -i -e '/^enabled: false$/d' "$RUN_DIR/channels/orthanc-study-completed.yaml"
cat <<MSG
orthanc: http://127.0.0.1:8042 (junction / junction), DICOM 127.0.0.1:4242 AE ORTHANC; log in $ORTHANC_DIR/orthanc.log
  order a study:  junction hl7 send 127.0.0.1:6663 samples/hl7/orm_o01_nw.hl7
  then store its images in Orthanc (storescu -aec ORTHANC 127.0.0.1 4242 FILE.dcm, with the order's
  AccessionNumber ACC20261123001); once stable, var/out/ris-status/ gets the ORM^O01 CM
MSG
"$BIN_DIR/junction" run --config "$RUN_DIR/junction.yaml" "$@"
