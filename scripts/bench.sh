#!/usr/bin/env bash
# Benchmarks (not part of the tests). Prints the figures that go into the
# README's performance table. BENCH_SKIP_RELIABILITY=1 and BENCH_SKIP_DICOM=1 leave
# out the slow parts (the full-size reliability run; C-STORE and MWL).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh"
BUILD="${JUNCTION_BUILD_DIR:-$ROOT/build}"

echo "== hl7_parse: parse + serialize on one core (samples/hl7)"
taskset -c 0 "$BUILD/tests/bench_hl7_parse" "$ROOT/samples/hl7" --seconds "${BENCH_SECONDS:-4}"

# ---------------------------------------------------------------- MLLP channel benchmarks
SRC="$ROOT"
LOAD="$BUILD/tests/mllpload"
ECHO="$BUILD/tests/mllpecho"
JUNCTION="$BUILD/engine/app/junction"
MSG="$SRC/samples/hl7/orm_o01_nw.hl7"
COUNT="${BENCH_COUNT:-50000}"
T="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
wait_port() { for i in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open"; return 1; }
# Wait until the instances started here are idle (what a previous run left to do
# in the background, such as applying its journal to SQLite, would otherwise
# be measured with the next run): their CPU time stops moving for 0.5 s (20 s at most).
settle() {
  local before after i
  for i in $(seq 40); do
    before=$(for p in "${PIDS[@]}"; do awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null; done | paste -sd+ | bc)
    sleep 0.5
    after=$(for p in "${PIDS[@]}"; do awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null; done | paste -sd+ | bc)
    [ "$before" = "$after" ] && return 0
  done
}
load() { settle; "$LOAD" 127.0.0.1 "$1" --count "$COUNT" --conns 4 --msg "$MSG" --prefix "B$1-" | tail -1; }
rate() { sed -E 's/.*rate=([0-9]+).*/\1/' <<<"$1"; }

# A Junction instance in its own folder: junction_instance DIR [SYNC] < CHANNEL_YAML
junction_instance() {
  mkdir -p "$1/channels"
  printf 'store: { path: var/bench.db, sync: %s }\nadmin: { port: 0 }\n' "${2:-full}" > "$1/junction.yaml"
  cat > "$1/channels/bench.yaml"
  (cd "$1" && exec "$JUNCTION" run >"$1/run.log" 2>&1) & PIDS+=($!)
}
cat > "$T/transform.lua" <<'EOF'
-- A typical small mapping: read three fields, set two.
function map(msg)
  local mrn = msg:get("PID-3.1")
  local acc = msg:get("OBR-18")
  local family = msg:get("PID-5.1")
  msg:set("MSH-5", "EMR")
  msg:set("PID-5.1", string.upper(family) .. "")
  return nil
end
EOF

P_FLOOR=17701; P_PY=17702; P_A=17703; P_E=17704; P_R=17705; P_N=17706; P_EN=17707; P_RN=17708; P_E4=17709; P_EN4=17710
"$ECHO" $P_FLOOR & PIDS+=($!)
/usr/bin/python3 "$SRC/tests/bench/ack_server.py" $P_PY & PIDS+=($!)
junction_instance "$T/a" <<EOF
channel: bench-a
source: { type: mllp, port: $P_A, host: 127.0.0.1 }
script: $T/transform.lua
transform: map
storage: production
destinations: []
EOF
junction_instance "$T/n" normal <<EOF
channel: bench-a-normal
source: { type: mllp, port: $P_N, host: 127.0.0.1 }
script: $T/transform.lua
transform: map
storage: production
destinations: []
EOF
junction_instance "$T/r" <<EOF
channel: bench-sink
source: { type: mllp, port: $P_R, host: 127.0.0.1 }
storage: production
destinations: []
EOF
junction_instance "$T/e" <<EOF
channel: bench-forward
source: { type: mllp, port: $P_E, host: 127.0.0.1 }
script: $T/transform.lua
transform: map
storage: production
destinations:
  - { name: sink, type: mllp, host: 127.0.0.1, port: $P_R }
EOF
junction_instance "$T/rn" normal <<EOF
channel: bench-sink-normal
source: { type: mllp, port: $P_RN, host: 127.0.0.1 }
storage: production
destinations: []
EOF
junction_instance "$T/en" normal <<EOF
channel: bench-forward-normal
source: { type: mllp, port: $P_EN, host: 127.0.0.1 }
script: $T/transform.lua
transform: map
storage: production
destinations:
  - { name: sink, type: mllp, host: 127.0.0.1, port: $P_RN }
EOF
junction_instance "$T/e4" <<EOF
channel: bench-forward-4
source: { type: mllp, port: $P_E4, host: 127.0.0.1 }
script: $T/transform.lua
transform: map
storage: production
destinations:
  - { name: sink, type: mllp, host: 127.0.0.1, port: $P_R, threads: 4 }
EOF
junction_instance "$T/en4" normal <<EOF
channel: bench-forward-normal-4
source: { type: mllp, port: $P_EN4, host: 127.0.0.1 }
script: $T/transform.lua
transform: map
storage: production
destinations:
  - { name: sink, type: mllp, host: 127.0.0.1, port: $P_RN, threads: 4 }
EOF
for p in $P_FLOOR $P_PY $P_A $P_E $P_R $P_N $P_EN $P_RN $P_E4 $P_EN4; do wait_port $p; done

echo
echo "== MLLP, mllpload: $COUNT x ORM^O01, 4 connections"
floor=$(load $P_FLOOR); echo "mllpecho floor:                       $floor"
py=$(load $P_PY);       echo "python-hl7 asyncio ACK server:        $py"
a=$(load $P_A);         echo "(a) Junction store + Lua + ACK:       $a"
n=$(load $P_N);         echo "(a) same, store sync: normal:         $n"
b=$(load $P_E);         echo "(b) Junction -> Lua -> Junction:      $b"
bn=$(load $P_EN);       echo "(b) same, both stores sync: normal:   $bn"
b4=$(load $P_E4);       echo "(b) destination threads: 4:           $b4"
bn4=$(load $P_EN4);     echo "(b) threads: 4, sync: normal:         $bn4"
echo "RESULT mllp_a_msg_s=$(rate "$a") floor_msg_s=$(rate "$floor") python_msg_s=$(rate "$py") ratio_a_floor=$(awk -v a="$(rate "$a")" -v f="$(rate "$floor")" 'BEGIN{printf "%.2f", a/f}') ratio_a_python=$(awk -v a="$(rate "$a")" -v f="$(rate "$py")" 'BEGIN{printf "%.2f", a/f}')"
echo "RESULT mllp_a_normal_msg_s=$(rate "$n") ratio_a_normal_floor=$(awk -v a="$(rate "$n")" -v f="$(rate "$floor")" 'BEGIN{printf "%.2f", a/f}')"
echo "RESULT mllp_b_msg_s=$(rate "$b") ratio_b_floor=$(awk -v a="$(rate "$b")" -v f="$(rate "$floor")" 'BEGIN{printf "%.2f", a/f}')"
echo "RESULT mllp_b_normal_msg_s=$(rate "$bn") ratio_b_normal_floor=$(awk -v a="$(rate "$bn")" -v f="$(rate "$floor")" 'BEGIN{printf "%.2f", a/f}')"
echo "RESULT mllp_b_threads4_msg_s=$(rate "$b4") mllp_b_threads4_normal_msg_s=$(rate "$bn4") ratio_b_threads4_normal_floor=$(awk -v a="$(rate "$bn4")" -v f="$(rate "$floor")" 'BEGIN{printf "%.2f", a/f}')"

echo
echo "== latency at 1,000 msg/s, one connection, 5 s"
echo "(a) Junction:   $("$BUILD/tests/bench_mllp_latency" 127.0.0.1 $P_A "$MSG" --rate 1000 --seconds 5)"
echo "(b) forward:    $("$BUILD/tests/bench_mllp_latency" 127.0.0.1 $P_E "$MSG" --rate 1000 --seconds 5)"
echo "(a) normal:     $("$BUILD/tests/bench_mllp_latency" 127.0.0.1 $P_N "$MSG" --rate 1000 --seconds 5)"
echo "(b) normal:     $("$BUILD/tests/bench_mllp_latency" 127.0.0.1 $P_EN "$MSG" --rate 1000 --seconds 5)"
echo "mllpecho floor: $("$BUILD/tests/bench_mllp_latency" 127.0.0.1 $P_FLOOR "$MSG" --rate 1000 --seconds 5)"

if [ -z "${BENCH_SKIP_DICOM:-}" ]; then
  echo
  JUNCTION_BIN="$JUNCTION" bash "$SRC/tests/bench/dicom_store.sh"
  echo
  JUNCTION_BIN="$JUNCTION" DICOM_BENCH_SYNC=normal DICOM_BENCH_PORT=28402 bash "$SRC/tests/bench/dicom_store.sh"
  echo
  bash "$SRC/tests/bench/mwl.sh" "$BUILD" "$SRC"
fi

if [ -z "${BENCH_SKIP_RELIABILITY:-}" ]; then
  echo
  echo "== reliability at full size: 100,000 messages, SIGKILLs"
  JUNCTION_BIN="$JUNCTION" JUNCTION_SOURCE_DIR="$SRC" MLLPLOAD="$LOAD" RELIABILITY_COUNT=100000 RELIABILITY_KILLS=8 \
    bash "$SRC/tests/integration/reliability.sh"
fi
