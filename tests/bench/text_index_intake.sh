#!/usr/bin/env bash
# What the store's text index costs MLLP intake: the (a) channel of
# scripts/bench.sh (ORM^O01, Lua mapping, storage: production, no destination)
# on four engines, sync full and normal, each with the text index on and off,
# measured in interleaved runs (a slow phase of this shared machine hits both
# alike). Each run gets a fresh load of COUNT messages after the engines are
# idle again (the index of the previous run caught up). Prints each round, the
# medians and the median of the rounds' ratios on/off.
#   text_index_intake.sh BUILD_DIR SOURCE_DIR [COUNT] [REPEAT]   (50000, 5)
set -euo pipefail
BUILD="$(cd "$1" && pwd)"; SRC="$(cd "$2" && pwd)"; COUNT="${3:-50000}"; REPEAT="${4:-5}"
JUNCTION="$BUILD/engine/app/junction"
LOAD="$BUILD/tests/mllpload"
MSG="$SRC/samples/hl7/orm_o01_nw.hl7"
T="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# Until the engines' CPU time stops moving for 0.5 s (60 s at most), then until
# what they wrote is on disk: the index one engine writes after its run (at
# idle priority) must not be flushed during another engine's run.
settle() {
  local before after
  for _ in $(seq 120); do
    before=$(for p in "${PIDS[@]}"; do awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null; done | paste -sd+ | bc)
    sleep 0.5
    after=$(for p in "${PIDS[@]}"; do awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null; done | paste -sd+ | bc)
    [ "$before" = "$after" ] && break
  done
  sync
}
cp "$SRC/tests/bench/map.lua" "$T/transform.lua"
engine() {  # engine NAME SYNC TEXT_INDEX PORT
  local d="$T/$1"
  mkdir -p "$d/channels"
  printf 'store: { path: var/bench.db, sync: %s, text_index: %s }\nadmin: { port: 0 }\n' "$2" "$3" > "$d/junction.yaml"
  cat > "$d/channels/bench.yaml" <<EOF
channel: bench-a
source: { type: mllp, port: $4, host: 127.0.0.1 }
script: $T/transform.lua
transform: map
storage: production
destinations: []
EOF
  (cd "$d" && exec "$JUNCTION" run >"$d/run.log" 2>&1) & PIDS+=($!)
}
engine full-on full true 17841; engine full-off full false 17842
engine normal-on normal true 17843; engine normal-off normal false 17844
for p in 17841 17842 17843 17844; do wait_port $p || { cat "$T"/*/run.log; exit 1; }; done
for p in 17841 17842 17843 17844; do "$LOAD" 127.0.0.1 $p --count 5000 --conns 4 --msg "$MSG" --prefix "W$p-" >/dev/null; done
# Each round measures on and off back to back, on first in odd rounds and off
# first in even ones; a round's ratio on/off compares two runs moments apart.
declare -A rates ratios
run() {  # run NAME PORT ROUND: the rate of one load
  settle
  "$LOAD" 127.0.0.1 "$2" --count "$COUNT" --conns 4 --msg "$MSG" --prefix "B$2-$3-" | tail -1 |
    grep -oE 'rate=[0-9]+' | head -1 | cut -d= -f2
}
for r in $(seq "$REPEAT"); do
  for pair in full:17841:17842 normal:17843:17844; do
    IFS=: read -r s pon poff <<<"$pair"
    if (( r % 2 )); then on=$(run "$s-on" "$pon" "$r"); off=$(run "$s-off" "$poff" "$r")
    else off=$(run "$s-off" "$poff" "$r"); on=$(run "$s-on" "$pon" "$r"); fi
    echo "round $r $s: on $on, off $off msg/s"
    rates[$s-on]+="$on "; rates[$s-off]+="$off "
    ratios[$s]+="$(awk -v a="$on" -v b="$off" 'BEGIN{printf "%.3f", a/b}') "
  done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
for s in full normal; do
  echo "RESULT text_index_intake_${s}_on_msg_s=$(median "${rates[$s-on]}") ${s}_off_msg_s=$(median "${rates[$s-off]}")" \
       "median_round_ratio_on_off=$(median "${ratios[$s]}")"
done
