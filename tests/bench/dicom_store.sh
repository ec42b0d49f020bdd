#!/usr/bin/env bash
# C-STORE throughput: the same instances (copies of pydicom's CT_small.dcm,
# 39 KB, each with a new SOP Instance UID) sent by storescu over one
# association (or DICOM_BENCH_ASSOCS in parallel) to DCMTK's storescp and to
# Junction's `dicom` source (a channel on the default store, default
# `respond_after: file`: each instance's structure checked, the file written
# (and flushed with sync full) before the C-STORE response, its message made
# right after). Junction's time runs until the last of the channel's messages
# is in the store, not only until storescu is done. storescu runs with
# TCP_NODELAY=1 so that DCMTK does not wait on delayed ACKs (see DESIGN.md).
#   DICOM_BENCH_COUNT  instances (default 2000)
#   DICOM_BENCH_PORT   first of two ports (default 28400)
#   DICOM_BENCH_ASSOCS parallel storescu processes (associations), default 1
#   DICOM_BENCH_SYNC   Junction's store.sync: full (default) or normal
#   DICOM_BENCH_RESPOND_AFTER  the source's respond_after: file (default) or message
#   JUNCTION_BIN       the junction binary (default build/engine/app/junction)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
JUNCTION="${JUNCTION_BIN:-${JUNCTION_BUILD_DIR:-$ROOT/build}/engine/app/junction}"
COUNT="${DICOM_BENCH_COUNT:-2000}"
ASSOCS="${DICOM_BENCH_ASSOCS:-1}"
P1="${DICOM_BENCH_PORT:-28400}"
P2=$((P1 + 1))
SAMPLE=/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm
T="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
wait_port() { for i in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open"; return 1; }
now() { date +%s.%N; }

echo "== dicom_store: $COUNT x $(stat -c %s "$SAMPLE") B instances, storescu (TCP_NODELAY=1), $ASSOCS association(s)"
/usr/bin/python3 - "$SAMPLE" "$T/in" "$COUNT" "$ASSOCS" <<'PY'
import os, sys
import pydicom
from pydicom.uid import generate_uid
src, out, n, parts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for p in range(parts):
    os.makedirs(f"{out}/{p}")
ds = pydicom.dcmread(src)
for i in range(n):
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.save_as(f"{out}/{i % parts}/{i:05d}.dcm", write_like_original=True)
PY

send() {  # send PORT CALLED_AE -> seconds; one storescu per folder of $T/in, in parallel
  local t0 t1 pids=() p rc=0
  t0=$(now)
  for d in "$T/in"/*; do
    TCP_NODELAY=1 storescu -aet BENCH -aec "$2" +sd 127.0.0.1 "$1" "$d" >"$T/storescu-$1-$(basename "$d").log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  t1=$(now)
  if [ "$rc" -ne 0 ]; then
    echo "storescu to $2 failed:" >&2
    tail -5 "$T"/storescu-"$1"-*.log >&2
    return 1
  fi
  echo "$t1 - $t0" | bc -l
}

# storescp: writes each instance to a folder (no fsync).
mkdir -p "$T/scp"
(cd "$T" && TCP_NODELAY=1 exec storescp -aet SCP -od "$T/scp" "$P1" >"$T/storescp.log" 2>&1) & PIDS+=($!)
wait_port "$P1"
S1=$(send "$P1" SCP) || exit 1
N1=$(ls "$T/scp" | wc -l)

# Junction: dicom source on a channel with the default store (sync full unless
# DICOM_BENCH_SYNC says otherwise), no destinations.
mkdir -p "$T/j/channels"
printf 'store: { path: var/junction.db, sync: %s }\nadmin: { port: 0 }\n' "${DICOM_BENCH_SYNC:-full}" > "$T/j/junction.yaml"
cat > "$T/j/channels/images.yaml" <<YAML
channel: images
source: { type: dicom, port: $P2, ae_title: JUNCTION, respond_after: ${DICOM_BENCH_RESPOND_AFTER:-file} }
storage: production
destinations: []
YAML
(cd "$T/j" && exec "$JUNCTION" run >"$T/j/run.log" 2>&1) & PIDS+=($!)
wait_port "$P2"
T0=$(now)
S2=$(send "$P2" JUNCTION) || exit 1
# ... and until every instance is a message in the store (read-only polling).
/usr/bin/python3 - "$T/j/var/junction.db" "$COUNT" <<'PY' || { tail "$T/j/run.log"; exit 1; }
import sqlite3, sys, time
db, want = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 120
while True:
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        n = c.execute("SELECT count(*) FROM messages WHERE channel = 'images'").fetchone()[0]
        c.close()
    except sqlite3.Error:
        n = 0
    if n >= want:
        break
    if time.time() > deadline:
        sys.exit(f"only {n} of {want} messages after 120 s")
    time.sleep(0.01)
PY
S2M=$(echo "$(now) - $T0" | bc -l)
N2=$(find "$T/j/var/dicom" -path '*/.incoming' -prune -o -name '*.dcm' -print | wc -l)

[ "$N1" -eq "$COUNT" ] || { echo "storescp stored $N1 of $COUNT"; exit 1; }
[ "$N2" -eq "$COUNT" ] || { echo "junction stored $N2 of $COUNT"; tail "$T/j/run.log"; exit 1; }
R1=$(echo "$COUNT / $S1" | bc -l)
R2=$(echo "$COUNT / $S2M" | bc -l)
printf 'storescp:  %6.0f instances/s (%.2f s)\n' "$R1" "$S1"
if [ "${DICOM_BENCH_SYNC:-full}" = full ]; then f="flushed to disk"; else f="written, not flushed"; fi
if [ "${DICOM_BENCH_RESPOND_AFTER:-file}" = message ]; then what="each instance and its message $f before the response"
else what="each instance $f before the response, its message right after"; fi
printf 'junction:  %6.0f instances/s (%.2f s to the last message; storescu done after %.2f s; store sync %s: %s)\n' \
  "$R2" "$S2M" "$S2" "${DICOM_BENCH_SYNC:-full}" "$what"
printf 'ratio junction/storescp: %.2f\n' "$(echo "$R2 / $R1" | bc -l)"
printf 'RESULT dicom_store_storescp_inst_s=%.0f dicom_store_junction_inst_s=%.0f ratio_dicom_store=%.2f\n' "$R1" "$R2" "$(echo "$R2 / $R1" | bc -l)"
