#!/usr/bin/env bash
# The console's cost: the (a) throughput (mllpload into a channel that stores,
# runs a Lua mapping and ACKs, as scripts/bench.sh's (a)) with the console's
# dashboard open in headless Chromium and refreshing every 2 s, against the
# same runs with the browser on a blank page, alternated on the same engine;
# the median of each round's ratio (with / without; the order within a round
# swapped every round), beside the median rates.
# usage: tests/bench/console.sh BUILD_DIR SOURCE_DIR   (CONSOLE_BENCH_COUNT=50000, BENCH_REPEAT=5)
set -euo pipefail
BUILD="$(cd "$1" && pwd)"; SRC="$(cd "$2" && pwd)"
COUNT="${CONSOLE_BENCH_COUNT:-50000}"
REPEAT="${CONSOLE_BENCH_REPEAT:-5}"
JUNCTION="$BUILD/engine/app/junction"
LOAD="$BUILD/tests/mllpload"
MSG="$SRC/samples/hl7/orm_o01_nw.hl7"
T="$(mktemp -d)"
PIDS=()
BROWSER=""
cleanup() { [ -n "$BROWSER" ] && kill "$BROWSER" 2>/dev/null; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
wait_port() { for i in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open"; return 1; }
rate() { grep -oE 'rate=[0-9]+' <<<"$1" | head -1 | cut -d= -f2; }
median() { sort -n | sed -n "$(( (REPEAT + 1) / 2 ))p"; }

P_MLLP=17741; P_ADMIN=17742
mkdir -p "$T/j/channels"
printf 'store: { path: var/bench.db, sync: full }\nadmin: { port: %s }\n' $P_ADMIN > "$T/j/junction.yaml"
cat > "$T/j/map.lua" <<'LUA'
function map(msg)
  msg:set("MSH-5", "EMR")
  msg:set("PID-5.1", string.upper(msg:get("PID-5.1")))
end
LUA
cat > "$T/j/channels/bench.yaml" <<EOF
channel: bench-console
source: { type: mllp, port: $P_MLLP, host: 127.0.0.1 }
script: $T/j/map.lua
transform: map
storage: production
destinations: []
EOF
(cd "$T/j" && JUNCTION_ADMIN_PASSWORD=bench-console-1 exec "$JUNCTION" run >"$T/j/run.log" 2>&1) & PIDS+=($!)
wait_port $P_MLLP; wait_port $P_ADMIN
"$LOAD" 127.0.0.1 $P_MLLP --count 5000 --conns 4 --msg "$MSG" --prefix W- >/dev/null

# One browser for every run, logged in: the dashboard is shown for the runs
# with it and a blank page for the others, so that the browser's start is in
# neither.
(cd "$SRC/tests/node" && exec node console_dashboard.js "http://127.0.0.1:$P_ADMIN" admin bench-console-1) >"$T/browser.log" 2>&1 &
BROWSER=$!
said() {  # said TEXT N: waits until the browser has printed N lines starting with TEXT
  for i in $(seq 600); do [ "$(grep -c "^$1" "$T/browser.log")" -ge "$2" ] && return 0; sleep 0.1; done
  echo "the browser did not say '$1':"; cat "$T/browser.log"; exit 1
}
said ready 1
# CPU time (1/100 s) of processes and their finished children; the browser's processes.
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15+$16+$17}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
tree() { echo "$1"; local c; for c in $(pgrep -P "$1"); do tree "$c"; done; }
ENGINE="${PIDS[0]}"

echo "== the console's dashboard open while mllpload sends $COUNT x ORM^O01 (4 connections, store sync: full), alternated (the order swapped every round: the store grows), the median of $REPEAT runs each and of the rounds' ratios"
without=(); with=(); ratios=()
run_without() {
  local line; line=$("$LOAD" 127.0.0.1 $P_MLLP --count "$COUNT" --conns 4 --msg "$MSG" --prefix "N$1-" | tail -1)
  echo "without the console: $line"; without+=("$(rate "$line")")
}
run_with() {
  local line b0 b1 e0 e1
  kill -USR1 "$BROWSER"; said open "$1"
  b0=$(ticks $(tree "$BROWSER")); e0=$(ticks "$ENGINE")
  line=$("$LOAD" 127.0.0.1 $P_MLLP --count "$COUNT" --conns 4 --msg "$MSG" --prefix "D$1-" | tail -1)
  b1=$(ticks $(tree "$BROWSER")); e1=$(ticks "$ENGINE")
  kill -USR2 "$BROWSER"; said closed "$1"
  echo "with the dashboard:  $line (refreshes: $(grep '^closed' "$T/browser.log" | tail -1 | cut -d' ' -f2); CPU s: browser $(awk -v t=$((b1 - b0)) 'BEGIN{printf "%.2f", t/100}'), engine $(awk -v t=$((e1 - e0)) 'BEGIN{printf "%.2f", t/100}'))"
  with+=("$(rate "$line")")
}
for r in $(seq "$REPEAT"); do
  if [ $((r % 2)) -eq 1 ]; then run_without "$r"; run_with "$r"; else run_with "$r"; run_without "$r"; fi
  ratios+=("$(awk -v a="${without[-1]}" -v b="${with[-1]}" 'BEGIN{printf "%.3f", b/a}')")
done
a=$(printf '%s\n' "${without[@]}" | median)
b=$(printf '%s\n' "${with[@]}" | median)
echo "rounds' ratios (with / without): ${ratios[*]}"
echo "RESULT console_without_msg_s=$a console_dashboard_msg_s=$b ratio_console_dashboard=$(printf '%s\n' "${ratios[@]}" | median | awk '{printf "%.2f", $1}')"
