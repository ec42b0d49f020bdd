#!/usr/bin/env bash
# A deep backlog: MLLP intake (sync: normal, storage: production) into a channel
# whose MLLP destination is down. Prints the engine's RSS as the backlog grows,
# the time from a restart to listening (and its RSS) with the whole backlog
# queued, then the drain rate once the destination (mllp_sink) is back.
#   backlog.sh BUILD_DIR SOURCE_DIR [COUNT]   (COUNT default 1000000)
#   BACKLOG_QUEUE_LIMIT=N sets the channel's queue_limit (for engines that have a default one)
set -euo pipefail
BUILD="$(cd "$1" && pwd)"; SRC="$(cd "$2" && pwd)"; COUNT="${3:-1000000}"
JUNCTION="$BUILD/engine/app/junction"
LOAD="$BUILD/tests/mllpload"
SINK="$BUILD/tests/mllp_sink"
T="$(mktemp -d)"
P_IN=17801; P_OUT=17802
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$T"; }
trap cleanup EXIT
mkdir -p "$T/channels"
echo "store: { path: var/junction.db, sync: normal }" > "$T/junction.yaml"
cat > "$T/channels/backlog.yaml" <<EOF
channel: backlog
storage: production
${BACKLOG_QUEUE_LIMIT:+queue_limit: $BACKLOG_QUEUE_LIMIT}
source: { type: mllp, port: $P_IN, host: 127.0.0.1 }
destinations:
  - { name: down, type: mllp, host: 127.0.0.1, port: $P_OUT, connect_timeout: 1s,
      retry: { attempts: 1000000, backoff: 1s, max_backoff: 2s } }
EOF
rss() { echo $(( $(ps -o rss= -p "$1") / 1024 )); }
wait_port() { for _ in $(seq 600); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.01; done; return 1; }
start() { (cd "$T" && exec "$JUNCTION" run >>"$T/junction.log" 2>&1) & ENGINE=$!; PIDS+=("$ENGINE"); }

start
wait_port $P_IN || { cat "$T/junction.log"; exit 1; }
echo "backlog: $COUNT messages behind a dead destination"
echo "queued 0: RSS $(rss "$ENGINE") MB"
STEP=$(( COUNT / 5 ))
for i in 1 2 3 4 5; do
  "$LOAD" 127.0.0.1 $P_IN --count "$STEP" --conns 4 --msg "$SRC/samples/hl7/orm_o01_nw.hl7" --prefix "B$i-" >"$T/load.out"
  echo "queued $(( i * STEP )): RSS $(rss "$ENGINE") MB; intake $(grep -o 'rate=[0-9]*/s' "$T/load.out")"
done
kill -TERM "$ENGINE"; wait "$ENGINE" || true
du -sh "$T/var" | sed 's/^/store on disk: /'

s=$(date +%s.%N)
start
wait_port $P_IN || { cat "$T/junction.log"; exit 1; }
e=$(date +%s.%N)
sleep 1
echo "restart to listening with $COUNT queued: $(echo "$e - $s" | bc) s; RSS $(rss "$ENGINE") MB"

"$SINK" $P_OUT --count "$COUNT" --idle 60 >"$T/sink.out" & SINKPID=$!; PIDS+=("$SINKPID")
wait "$SINKPID" || true
echo "drain: $(cat "$T/sink.out"); RSS after $(rss "$ENGINE") MB"
kill -TERM "$ENGINE"; wait "$ENGINE" || true
