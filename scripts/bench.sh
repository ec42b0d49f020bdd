#!/usr/bin/env bash
# Benchmarks (not part of the tests). Prints the figures that go into the
# performance tables (README, docs/performance.md). BENCH_SKIP_RELIABILITY=1,
# BENCH_SKIP_DICOM=1 and BENCH_SKIP_BACKLOG=1 leave out the slow parts (the
# full-size reliability run; C-STORE and MWL; the deep backlog, whose size
# BENCH_BACKLOG sets: 10000000 for the full figure, about 12 GB of disk);
# BENCH_SEARCH_COUNT sets the size of the message search's store (1000000 by
# default), BENCH_SKIP_TEXT_INDEX=1 leaves out the text index's intake rows;
# BENCH_SKIP_HTTP=1 leaves out the http destination rows, BENCH_SKIP_ORTHANC=1 the orthanc
# source's (BENCH_ORTHANC_COUNT instances, 10000 by default), BENCH_SKIP_METRICS=1 the
# /metrics scrape of 100 channels, BENCH_SKIP_CONSOLE=1 the (a) run with the console's
# dashboard open in headless Chromium.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh"
BUILD="${JUNCTION_BUILD_DIR:-$ROOT/build}"

echo "== hl7_parse: parse + serialize on one core (samples/hl7)"
taskset -c 0 "$BUILD/tests/bench_hl7_parse" "$ROOT/samples/hl7" --seconds "${BENCH_SECONDS:-4}"

echo
echo "== store: SQLite writer CPU per message (journaled ORM^O01, storage: production)"
STORE_T="$(mktemp -d)"
"$BUILD/tests/bench_store_apply" "$STORE_T" "$ROOT/samples/hl7/orm_o01_nw.hl7" --count 100000
rm -rf "$STORE_T"/*
echo "random patient ids and accession numbers, 400,000 messages:"
"$BUILD/tests/bench_store_apply" "$STORE_T" "$ROOT/samples/hl7/orm_o01_nw.hl7" --count 400000 --random-keys
rm -rf "$STORE_T"

echo
echo "== message search: ${BENCH_SEARCH_COUNT:-1000000} ORM^O01 in the store (MessageStore::search, what the"
echo "   admin API's GET /api/v1/messages runs; the peer: the same lookups in plain SQL, and a LIKE scan"
echo "   of the raw content for text)"
SEARCH_T="$(mktemp -d)"
"$BUILD/tests/bench_message_search" "$SEARCH_T" --count "${BENCH_SEARCH_COUNT:-1000000}"
echo "the same searches over HTTP (GET /api/v1/messages of junction run on that store), against GET /health:"
/usr/bin/python3 "$ROOT/tests/bench/search_http.py" "$BUILD/engine/app/junction" "$SEARCH_T/search.db" 200
rm -rf "$SEARCH_T"

if [ -z "${BENCH_SKIP_METRICS:-}" ]; then
  echo
  echo "== /metrics scrape: 100 channels with a destination each (kept totals and histograms), against /health and /api/v1/me of the same server"
  /usr/bin/python3 "$ROOT/tests/bench/metrics_scrape.py" "$BUILD/engine/app/junction" 100 500
fi

# ---------------------------------------------------------------- MLLP channel benchmarks
SRC="$ROOT"
LOAD="$BUILD/tests/mllpload"
ECHO="$BUILD/tests/mllpecho"
DURABLE="$BUILD/tests/mllpdurable"
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
# Each target first gets WARMUP unmeasured messages (a fresh store's first pages,
# WAL and journal files are created then), the floor and python-hl7 alike.
WARMUP="${BENCH_WARMUP:-5000}"
# Every throughput row is measured REPEAT times (3 by default), ours and the
# peers alike, and the run with the median rate is reported: one run of 50,000
# messages lasts 1-2 s, short enough for a burst of other work on this shared
# VM to move it by a fifth.
REPEAT="${BENCH_REPEAT:-3}"
rate() { grep -oE 'rate=[0-9]+' <<<"$1" | head -1 | cut -d= -f2; }  # the first rate= of a line
median() {  # the line with the median rate= of its input lines
  local lines
  mapfile -t lines
  printf '%s\n' "${lines[@]}" | awk '{ match($0, /rate=[0-9]+/); print substr($0, RSTART + 5, RLENGTH - 5) "\t" $0 }' \
    | sort -n | cut -f2- | sed -n "$(( (${#lines[@]} + 1) / 2 ))p"
}

# Several listeners measured in turn: each round runs each once, the order
# rotated every round, so that the disk's moods (a checkpoint, another job's
# writes) fall on all of them alike rather than on whichever ran its repeats
# then. interleaved VAR=PORT[:MLLPLOAD OPTION] ...: sets each VAR to its
# median run's line.
interleaved() {
  # Its own names start with _: a VAR must not be one of them.
  local _spec _var _rest _port _opt _r _i _n=$# _line
  local -a _specs=("$@")
  : > "$T/rounds"
  for _spec in "${_specs[@]}"; do
    _rest=${_spec#*=}; _port=${_rest%%:*}; _opt=""; [ "$_rest" != "$_port" ] && _opt=${_rest#*:}
    settle
    "$LOAD" 127.0.0.1 "$_port" --count "$WARMUP" --conns 4 --msg "$MSG" --prefix "W$_port-" $_opt >/dev/null
  done
  for _r in $(seq "$REPEAT"); do
    for _i in $(seq 0 $((_n - 1))); do
      _spec=${_specs[$(( (_i + _r) % _n ))]}
      _var=${_spec%%=*}; _rest=${_spec#*=}; _port=${_rest%%:*}; _opt=""; [ "$_rest" != "$_port" ] && _opt=${_rest#*:}
      settle
      _line=$("$LOAD" 127.0.0.1 "$_port" --count "$COUNT" --conns 4 --msg "$MSG" --prefix "B$_port-$_r-" $_opt | tail -1)
      echo "$_var $_line" >> "$T/rounds"
    done
  done
  for _spec in "${_specs[@]}"; do
    _var=${_spec%%=*}
    printf -v "$_var" '%s' "$(grep "^$_var " "$T/rounds" | cut -d' ' -f2- | median)"
  done
}

# A Junction instance in its own folder: junction_instance DIR [SYNC] < CHANNEL_YAML
junction_instance() {
  mkdir -p "$1/channels"
  printf 'store: { path: var/bench.db, sync: %s }\nadmin: { port: 0 }\n' "${2:-full}" > "$1/junction.yaml"
  cat > "$1/channels/bench.yaml"
  (cd "$1" && exec "$JUNCTION" run >"$1/run.log" 2>&1) & PIDS+=($!)
}
cp "$SRC/tests/bench/map.lua" "$T/transform.lua"

P_FLOOR=17701; P_PY=17702; P_A=17703; P_E=17704; P_N=17706; P_EN=17707; P_RN=17708; P_E4=17709; P_EN4=17710
P_DURABLE=17721
"$ECHO" $P_FLOOR & PIDS+=($!)
# The floor of the sync: full rows: appends each message to a file on the
# stores' disk and fdatasyncs it (one sync for all connections) before the ACK.
"$DURABLE" $P_DURABLE "$T/durable.hl7" & PIDS+=($!)
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
# (b) forwarders deliver to mllp_sink, which ACKs like mllpecho and counts: the
# (b) figure is end to end (first message sent to the last one delivered), not
# the intake rate alone (a forwarder ACKs at intake and delivers from its queue).
forwarder() {  # forwarder DIR SYNC PORT SINK_PORT THREADS [WINDOW]
  junction_instance "$1" "$2" <<EOF
channel: bench-forward
source: { type: mllp, port: $3, host: 127.0.0.1 }
script: $T/transform.lua
transform: map
storage: production
destinations:
  - { name: sink, type: mllp, host: 127.0.0.1, port: $4, threads: $5, window: ${6:-1} }
EOF
}
P_S=17711; P_SN=17712; P_S4=17713; P_SN4=17714; P_R=17715; P_SR=17716
P_EW=17717; P_ENW=17718; P_SW=17719; P_SNW=17720
forwarder "$T/e" full $P_E $P_S 1
forwarder "$T/en" normal $P_EN $P_SN 1
forwarder "$T/e4" full $P_E4 $P_S4 4
forwarder "$T/en4" normal $P_EN4 $P_SN4 4
# One lane whose connection pipelines up to 8 messages (window: 8).
forwarder "$T/ew" full $P_EW $P_SW 1 8
forwarder "$T/enw" normal $P_ENW $P_SNW 1 8
# Two Junctions in a row, both sync: normal: forwarder -> relay -> mllp_sink.
forwarder "$T/jj" normal $P_RN $P_R 4
junction_instance "$T/relay" normal <<EOF
channel: relay
source: { type: mllp, port: $P_R, host: 127.0.0.1 }
storage: production
destinations:
  - { name: sink, type: mllp, host: 127.0.0.1, port: $P_SR, threads: 4 }
EOF
for p in $P_FLOOR $P_DURABLE $P_PY $P_A $P_E $P_R $P_N $P_EN $P_RN $P_E4 $P_EN4 $P_EW $P_ENW; do wait_port $p; done

# forward PORT SINK_PORT NAME: the load through a forwarder; sets NAME to the
# end-to-end rate and the sink's count, then leaves an mllpecho on SINK_PORT (for
# the latency runs).
forward_once() {  # forward_once PORT SINK_PORT RUN
  settle
  "$BUILD/tests/mllp_sink" "$2" --count "$COUNT" --idle 60 >"$T/sink.$2" &
  local sink=$! t0 t1 intake
  wait_port "$2" >/dev/null
  t0=$(date +%s.%N)
  intake=$("$LOAD" 127.0.0.1 "$1" --count "$COUNT" --conns 4 --msg "$MSG" --prefix "B$1-$3-" | tail -1)
  wait "$sink" || true
  t1=$(date +%s.%N)
  echo "rate=$(awk -v a="$t0" -v b="$t1" -v n="$COUNT" 'BEGIN{printf "%.0f", n/(b-a)}')/s end to end; sink: $(cat "$T/sink.$2"); intake: $(grep -oE 'rate=[0-9]+/s' <<<"$intake")"
}
forward() {
  local r line
  line=$(for r in $(seq "$REPEAT"); do forward_once "$1" "$2" "$r"; done | median)
  "$ECHO" "$2" >/dev/null 2>&1 & PIDS+=($!)
  printf -v "$3" '%s' "$line"
}

echo
echo "== MLLP, mllpload: $COUNT x ORM^O01, 4 connections (the median of $REPEAT runs each, the listeners in turn in each round)"
# The (a) rows and their peers interleaved (the peers' floors and ours in the
# same rounds); senders that connect for each message (many HL7 systems do) too.
interleaved floor=$P_FLOOR durable=$P_DURABLE py=$P_PY a=$P_A n=$P_N \
  ap=$P_A:--per-message dp=$P_DURABLE:--per-message
echo "mllpecho floor:                       $floor"
echo "mllpdurable floor (append + fdatasync, group commit): $durable"
echo "python-hl7 asyncio ACK server:        $py"
echo "(a) Junction store + Lua + ACK:       $a"
echo "(a) same, store sync: normal:         $n"
echo "(a) a connection per message:         $ap"
echo "mllpdurable, a connection per message: $dp"
forward $P_E $P_S b;       echo "(b) Junction -> Lua -> mllp_sink:     $b"
forward $P_EN $P_SN bn;    echo "(b) same, sync: normal:               $bn"
forward $P_E4 $P_S4 b4;    echo "(b) destination threads: 4:           $b4"
forward $P_EN4 $P_SN4 bn4; echo "(b) threads: 4, sync: normal:         $bn4"
forward $P_EW $P_SW bw;    echo "(b) window: 8:                        $bw"
forward $P_ENW $P_SNW bnw; echo "(b) window: 8, sync: normal:          $bnw"
forward $P_RN $P_SR bjj;   echo "(b) Junction -> Junction -> mllp_sink, normal, threads: 4: $bjj"
ratio() { awk -v a="$(rate "$1")" -v f="$(rate "$2")" 'BEGIN{printf "%.2f", a/f}'; }
echo "RESULT mllp_a_msg_s=$(rate "$a") floor_msg_s=$(rate "$floor") python_msg_s=$(rate "$py") ratio_a_floor=$(ratio "$a" "$floor") ratio_a_python=$(ratio "$a" "$py")"
echo "RESULT durable_floor_msg_s=$(rate "$durable") ratio_a_durable_floor=$(ratio "$a" "$durable")"
echo "RESULT mllp_a_normal_msg_s=$(rate "$n") ratio_a_normal_floor=$(ratio "$n" "$floor")"
echo "RESULT mllp_a_per_message_msg_s=$(rate "$ap") durable_per_message_msg_s=$(rate "$dp") ratio_a_durable_per_message=$(ratio "$ap" "$dp")"
echo "RESULT mllp_b_msg_s=$(rate "$b") mllp_b_threads4_msg_s=$(rate "$b4") ratio_b_threads4_floor=$(ratio "$b4" "$floor")"
echo "RESULT mllp_b_normal_msg_s=$(rate "$bn") mllp_b_threads4_normal_msg_s=$(rate "$bn4") ratio_b_threads4_normal_floor=$(ratio "$bn4" "$floor")"
echo "RESULT mllp_b_window8_msg_s=$(rate "$bw") mllp_b_window8_normal_msg_s=$(rate "$bnw") ratio_b_window8_normal_floor=$(ratio "$bnw" "$floor")"
echo "RESULT mllp_b_two_junctions_normal_msg_s=$(rate "$bjj")"

echo
echo "== latency at 1,000 msg/s, one connection, 5 s"
echo "(a) Junction:   $("$BUILD/tests/bench_mllp_latency" 127.0.0.1 $P_A "$MSG" --rate 1000 --seconds 5)"
echo "(b) forward:    $("$BUILD/tests/bench_mllp_latency" 127.0.0.1 $P_E "$MSG" --rate 1000 --seconds 5)"
echo "(a) normal:     $("$BUILD/tests/bench_mllp_latency" 127.0.0.1 $P_N "$MSG" --rate 1000 --seconds 5)"
echo "(b) normal:     $("$BUILD/tests/bench_mllp_latency" 127.0.0.1 $P_EN "$MSG" --rate 1000 --seconds 5)"
echo "mllpecho floor: $("$BUILD/tests/bench_mllp_latency" 127.0.0.1 $P_FLOOR "$MSG" --rate 1000 --seconds 5)"
# The floor of the sync: full rows: a durable append (write + fdatasync) on the
# disk the stores above use, at the same rate, with nothing else running.
echo "disk flush floor: $("$BUILD/tests/bench_flush_latency" "$T" --rate 1000 --seconds 5 --bytes 700)"

# ---------------------------------------------------------------- HTTP destination
# Junction (MLLP in, stored, an http destination POSTing each message) and a
# plain keep-alive HTTP client (http_load, the engine's own HTTP client with
# nothing around it) send the same messages to the same sink (http_sink, on the
# engine's HTTP server); both figures are the sink's, from the first message
# it received to the last, so the ratio is what the engine costs around the
# HTTP request itself. Junction's intake (MLLP, sync: normal) outruns its
# delivery, so its figure is the destination's.
if [ -z "${BENCH_SKIP_HTTP:-}" ]; then
  HSINK="$BUILD/tests/http_sink"
  HLOAD="$BUILD/tests/http_load"
  P_H1=17731; P_H4=17732; P_HS1=17733; P_HS4=17734; P_HP=17735
  http_forwarder() {  # http_forwarder DIR PORT SINK_PORT THREADS
    junction_instance "$1" normal <<EOF
channel: bench-http
source: { type: mllp, port: $2, host: 127.0.0.1 }
storage: production
destinations:
  - { name: sink, type: http, url: "http://127.0.0.1:$3/in", threads: $4 }
EOF
  }
  http_forwarder "$T/h1" $P_H1 $P_HS1 1
  http_forwarder "$T/h4" $P_H4 $P_HS4 4
  wait_port $P_H1; wait_port $P_H4
  http_forward_once() {  # http_forward_once PORT SINK_PORT COUNT PREFIX
    settle
    "$HSINK" "$2" --count "$3" --idle 60 >"$T/hsink.$2" &
    local sink=$! intake
    wait_port "$2" >/dev/null
    intake=$("$LOAD" 127.0.0.1 "$1" --count "$3" --conns 4 --msg "$MSG" --prefix "$4" | tail -1)
    wait "$sink" || true
    echo "$(grep -oE 'rate=[0-9]+/s' "$T/hsink.$2") delivered; sink: $(cat "$T/hsink.$2"); intake: $(grep -oE 'rate=[0-9]+/s' <<<"$intake")"
  }
  http_forward() {  # http_forward PORT SINK_PORT
    http_forward_once "$1" "$2" "$WARMUP" "HW$1-" >/dev/null
    local r
    for r in $(seq "$REPEAT"); do http_forward_once "$1" "$2" "$COUNT" "HB$1-$r-"; done | median
  }
  http_client() {  # http_client CONNS
    local r
    for r in $(seq "$REPEAT"); do
      settle
      "$HSINK" $P_HP --count "$COUNT" --idle 60 >"$T/hsink.peer" &
      local sink=$!
      wait_port $P_HP >/dev/null
      "$HLOAD" "http://127.0.0.1:$P_HP/in" --msg "$MSG" --count "$COUNT" --conns "$1" --prefix "HP$1-$r-" >/dev/null
      wait "$sink" || true
      cat "$T/hsink.peer"
    done | median
  }
  echo
  echo "== HTTP destination, $COUNT x ORM^O01 POSTed to http_sink (the median of $REPEAT runs each)"
  hc1=$(http_client 1); echo "http_load, 1 connection:                  $hc1"
  hc4=$(http_client 4); echo "http_load, 4 connections:                 $hc4"
  hd1=$(http_forward $P_H1 $P_HS1); echo "Junction -> http destination:             $hd1"
  hd4=$(http_forward $P_H4 $P_HS4); echo "Junction -> http destination, threads: 4: $hd4"
  echo "RESULT http_dest_msg_s=$(rate "$hd1") http_client_msg_s=$(rate "$hc1") ratio_http_dest_client=$(ratio "$hd1" "$hc1")"
  echo "RESULT http_dest_threads4_msg_s=$(rate "$hd4") http_client_conns4_msg_s=$(rate "$hc4") ratio_http_dest_threads4_client4=$(ratio "$hd4" "$hc4")"
fi

if [ -z "${BENCH_SKIP_CONSOLE:-}" ]; then
  echo
  bash "$SRC/tests/bench/console.sh" "$BUILD" "$SRC"
fi

if [ -z "${BENCH_SKIP_ORTHANC:-}" ]; then
  echo
  echo "== orthanc source: a real Orthanc's /changes against its own Lua OnStoredInstance callback (${BENCH_ORTHANC_COUNT:-10000} instances)"
  /usr/bin/python3 "$ROOT/tests/bench/orthanc_changes.py" "$JUNCTION" "${BENCH_ORTHANC_COUNT:-10000}"
fi

if [ -z "${BENCH_SKIP_DICOM:-}" ]; then
  echo
  JUNCTION_BIN="$JUNCTION" bash "$SRC/tests/bench/dicom_store.sh"
  echo
  JUNCTION_BIN="$JUNCTION" DICOM_BENCH_SYNC=normal DICOM_BENCH_PORT=28402 bash "$SRC/tests/bench/dicom_store.sh"
  echo
  bash "$SRC/tests/bench/mwl.sh" "$BUILD" "$SRC"
fi

if [ -z "${BENCH_SKIP_TEXT_INDEX:-}" ]; then
  echo
  echo "== the text index's cost on MLLP intake: (a) with text_index on and off, interleaved"
  bash "$SRC/tests/bench/text_index_intake.sh" "$BUILD" "$SRC" "$COUNT" "${BENCH_TEXT_INDEX_REPEAT:-5}"
fi

if [ -z "${BENCH_SKIP_BACKLOG:-}" ]; then
  echo
  echo "== a deep backlog: BENCH_BACKLOG (default 1,000,000) messages behind a dead destination"
  bash "$SRC/tests/bench/backlog.sh" "$BUILD" "$SRC" "${BENCH_BACKLOG:-1000000}"
fi

if [ -z "${BENCH_SKIP_RELIABILITY:-}" ]; then
  echo
  echo "== reliability at full size: 100,000 messages, SIGKILLs"
  JUNCTION_BIN="$JUNCTION" JUNCTION_SOURCE_DIR="$SRC" MLLPLOAD="$LOAD" RELIABILITY_COUNT=100000 RELIABILITY_KILLS=8 \
    bash "$SRC/tests/integration/reliability.sh"
fi
