#!/usr/bin/env bash
# MWL benchmark: the same worklist items served by Junction (orders in over MLLP
# through the shipped ris-worklist mapping, queried through a dicom_mwl source)
# and by DCMTK's wlmscpfs (the same items as worklist files); the same findscu
# queries against both. Reports both times, the ratio, and checks that both
# return the same number of matches for every query.
# usage: tests/bench/mwl.sh BUILD_DIR SOURCE_DIR   (MWL_COUNT=100000 by default)
set -euo pipefail
BUILD="$(cd "$1" && pwd)"; SRC="$(cd "$2" && pwd)"
COUNT="${MWL_COUNT:-100000}"
JUNCTION="$BUILD/engine/app/junction"
LOAD="$BUILD/tests/mllpload"
T="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
wait_port() { for i in $(seq 200); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open"; return 1; }
export TCP_NODELAY=1  # DCMTK peers without Nagle (see DESIGN.md)

P_HL7=17801; P_MWL=17802; P_WLM=17803
echo "== MWL: generating $COUNT items (ORM^O01 messages and worklist files)"
/usr/bin/python3 -W ignore "$SRC/tests/bench/mwl_items.py" "$COUNT" "$T/hl7" "$T/wl/BENCH"
echo "worklist files: $(ls "$T/wl/BENCH" | grep -c '\.wl$'), $(du -sh "$T/wl/BENCH" | cut -f1)"

mkdir -p "$T/j/channels"
printf 'store: { path: var/mwl.db, sync: normal }\nadmin: { port: 0 }\n' > "$T/j/junction.yaml"
cat > "$T/j/channels/orders.yaml" <<EOF
channel: orders
source: { type: mllp, port: $P_HL7, host: 127.0.0.1 }
script: $SRC/transforms/orders_to_worklist.lua
transform: to_worklist
storage: metadata
destinations:
  - { name: worklist, type: worklist }
EOF
cat > "$T/j/channels/mwl.yaml" <<EOF
channel: mwl
source: { type: dicom_mwl, port: $P_MWL, ae_title: BENCH }
destinations: []
EOF
(cd "$T/j" && exec "$JUNCTION" run >"$T/j/run.log" 2>&1) & PIDS+=($!)
# -dfr: keep items without a Scheduled Station AE Title (type 1 in the MWL, but
# ORM^O01 has no field for it), which wlmscpfs would otherwise skip.
wlmscpfs -dfr -dfp "$T/wl" "$P_WLM" >"$T/wlm.log" 2>&1 & PIDS+=($!)
wait_port $P_HL7; wait_port $P_MWL; wait_port $P_WLM

t0=$(date +%s.%N)
"$LOAD" 127.0.0.1 $P_HL7 --count "$COUNT" --conns 4 --msgdir "$T/hl7" --prefix MWL | tail -1
# Wait until every order reached the worklist (the worklist destination sent them all).
for i in $(seq 1200); do
  sent=$(cd "$T/j" && "$JUNCTION" messages --channel orders --counts 2>/dev/null | awk '$1=="SENT"{print $2}')
  [ "${sent:-0}" -ge "$COUNT" ] && break
  sleep 0.5
done
t1=$(date +%s.%N)
echo "orders -> worklist: $COUNT items in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"

RET=(-k PatientName -k PatientID -k AccessionNumber -k RequestedProcedureID -k StudyInstanceUID
     -k "ScheduledProcedureStepSequence[0].Modality" -k "ScheduledProcedureStepSequence[0].ScheduledStationAETitle"
     -k "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate"
     -k "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime"
     -k "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID")
# Keys wlmscpfs matches on (it only returns StudyInstanceUID, so no query by it here).
QUERIES=(
  "PatientID=P000123"
  "PatientID=$(printf 'P%06d' $((COUNT - 1)))"
  "AccessionNumber=A0000042"
  "PatientName=WILSON^ANNA"
  "PatientName=WIL*"
  "RequestedProcedureID=RP0000077"
  "ScheduledProcedureStepSequence[0].Modality=CT|ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20261208"
  "ScheduledProcedureStepSequence[0].Modality=MR|ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20261201-20261202"
  "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20261215|ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime=090000-100000"
)
# query PORT AE DIR KEYS -> number of matches
query() {
  local port=$1 ae=$2 dir=$3 keys=$4 args=()
  IFS='|' read -ra parts <<<"$keys"
  for k in "${parts[@]}"; do args+=(-k "$k"); done
  rm -rf "$dir"; mkdir -p "$dir"
  findscu -W -aec "$ae" -X -od "$dir" "${RET[@]}" "${args[@]}" 127.0.0.1 "$port" >"$dir.log" 2>&1 || { echo "findscu failed: $keys" >&2; cat "$dir.log" >&2; return 1; }
  ls "$dir" | wc -l
}
declare -a CJ CW
ELAPSED=0
run_all() {  # PORT AE NAME: fills CJ or CW with the match counts, ELAPSED with the seconds
  local port=$1 ae=$2 name=$3 i=0 n s e
  s=$(date +%s.%N)
  for q in "${QUERIES[@]}"; do
    n=$(query "$port" "$ae" "$T/r-$name-$i" "$q")
    if [ "$name" = junction ]; then CJ[$i]=$n; else CW[$i]=$n; fi
    i=$((i + 1))
  done
  e=$(date +%s.%N)
  ELAPSED=$(awk -v a="$s" -v b="$e" 'BEGIN{printf "%.3f", b-a}')
}
run_all $P_MWL BENCH junction; tj=$ELAPSED
run_all $P_WLM BENCH wlmscpfs; tw=$ELAPSED
bad=0
for i in "${!QUERIES[@]}"; do
  printf '  %-150s junction %5s  wlmscpfs %5s\n' "${QUERIES[$i]}" "${CJ[$i]}" "${CW[$i]}"
  [ "${CJ[$i]}" = "${CW[$i]}" ] || bad=1
done
echo "MWL ${#QUERIES[@]} findscu queries over $COUNT items: Junction ${tj} s, wlmscpfs ${tw} s"
echo "RESULT mwl_items=$COUNT mwl_junction_s=$tj mwl_wlmscpfs_s=$tw ratio_mwl_junction_wlmscpfs=$(awk -v a="$tj" -v b="$tw" 'BEGIN{printf "%.3f", a/b}')"
if [ $bad -ne 0 ]; then echo "MWL: Junction and wlmscpfs disagree on a query's matches"; exit 1; fi
