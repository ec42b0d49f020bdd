#!/usr/bin/env bash
# Reliability: messages flow MLLP → Junction (Lua transform) → MLLP → a second
# Junction that appends them to a file, while the first engine is killed with
# SIGKILL at random moments and restarted. Every message the sender got an AA
# for must reach the receiver (at least once), and nothing may stay stuck.
#
#   RELIABILITY_COUNT  messages to send (default 30000; bench.sh runs 100000)
#   RELIABILITY_KILLS  SIGKILLs (default 5)
#   RELIABILITY_WINDOW the forwarder's MLLP destination window (default 1)
set -u
BIN="${JUNCTION_BIN:?}"
SRC="${JUNCTION_SOURCE_DIR:?}"
LOAD="${MLLPLOAD:?}"
COUNT="${RELIABILITY_COUNT:-30000}"
KILLS="${RELIABILITY_KILLS:-5}"
WINDOW="${RELIABILITY_WINDOW:-1}"
T="$(mktemp -d)"
E_PID=""; R_PID=""; L_PID=""
cleanup() {
  for p in $E_PID $R_PID $L_PID; do kill -9 "$p" 2>/dev/null; done
  [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }

ports=$(/usr/bin/python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')
A=${ports% *}; B=${ports#* }

mkdir -p "$T/r/channels" "$T/e/channels"
cat > "$T/r/junction.yaml" <<EOF
store: { path: var/r.db }
admin: { port: 0 }
EOF
cat > "$T/r/channels/sink.yaml" <<EOF
channel: sink
source: { type: mllp, port: $B, host: 127.0.0.1 }
storage: metadata
destinations:
  - { name: file, type: file, directory: out, filename: received.hl7, append: true }
EOF
cat > "$T/e/junction.yaml" <<EOF
store: { path: var/e.db }
admin: { port: 0 }
EOF
cat > "$T/e/relay.lua" <<'EOF'
function relay(msg)
  msg:set("MSH-5", "SINK")
  msg:set("ZJN-1", msg:get("MSH-10"))
end
EOF
cat > "$T/e/channels/relay.yaml" <<EOF
channel: relay
source: { type: mllp, port: $A, host: 127.0.0.1 }
script: relay.lua
transform: relay
storage: production
destinations:
  - name: sink
    type: mllp
    host: 127.0.0.1
    port: $B
    connect_timeout: 1s
    response_timeout: 5s
    window: $WINDOW
    retry: { attempts: 1000000, backoff: 50ms, max_backoff: 1s }
EOF

(cd "$T/r" && exec "$BIN" run >"$T/r.log" 2>&1) & R_PID=$!
start_engine() { (cd "$T/e" && exec "$BIN" run >>"$T/e.log" 2>&1) & E_PID=$!; }
start_engine
wait_port() { for i in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
wait_port "$B" || fail "receiver did not start: $(cat "$T/r.log")"
wait_port "$A" || fail "engine did not start: $(cat "$T/e.log")"

"$LOAD" 127.0.0.1 "$A" --count "$COUNT" --conns 4 --msg "$SRC/samples/hl7/orm_o01_nw.hl7" \
  --prefix K --acked "$T/acked.txt" --reconnect 60 --timeout-ms 20000 >"$T/load.out" 2>&1 & L_PID=$!

kills=0
while kill -0 "$L_PID" 2>/dev/null && [ "$kills" -lt "$KILLS" ]; do
  sleep "$(/usr/bin/python3 -c 'import random; print(round(random.uniform(0.2, 1.0), 2))')"
  kill -0 "$L_PID" 2>/dev/null || break
  kill -9 "$E_PID" 2>/dev/null; wait "$E_PID" 2>/dev/null
  kills=$((kills+1))
  echo "kill $kills"
  start_engine
  wait_port "$A" || fail "engine did not restart after kill $kills: $(tail -5 "$T/e.log")"
done
wait "$L_PID"; L_PID=""
tail -3 "$T/load.out"
[ "$kills" -ge "$KILLS" ] || fail "only $kills kills happened before the load finished (raise RELIABILITY_COUNT)"
acked=$(sort -u "$T/acked.txt" | wc -l)
[ "$acked" -gt 0 ] || fail "no message was acknowledged"

# Let each engine drain its queue, then stop it gracefully.
# drain CONFIG CHANNEL: waits until nothing of CHANNEL is RECEIVED, TRANSFORMED or QUEUED.
drain() {
  local counts
  for i in $(seq 600); do
    counts=$("$BIN" messages --config "$1" --channel "$2" --counts 2>/dev/null)
    if ! echo "$counts" | grep -Eq '^(RECEIVED|QUEUED|TRANSFORMED) [1-9]'; then echo "$counts"; return 0; fi
    sleep 0.2
  done
  fail "messages stuck in channel $2: $counts"
}
drain "$T/e/junction.yaml" relay
kill -TERM "$E_PID"; wait "$E_PID"; E_PID=""
drain "$T/r/junction.yaml" sink >/dev/null
kill -TERM "$R_PID"; wait "$R_PID"; R_PID=""

/usr/bin/python3 - "$T/acked.txt" "$T/r/out/received.hl7" "$COUNT" <<'EOF' || fail "delivery check"
import sys
acked = set(l.strip() for l in open(sys.argv[1]) if l.strip())
data = open(sys.argv[2], 'rb').read().decode('latin-1')
ids = []
for seg in data.split('\r'):
    if seg.startswith('MSH|'):
        f = seg.split('|')
        ids.append(f[9])
got = set(ids)
missing = acked - got
dups = len(ids) - len(got)
print(f"sent {sys.argv[3]}, acknowledged {len(acked)}, received {len(got)} distinct ({dups} duplicates)")
if missing:
    print(f"{len(missing)} acknowledged messages never arrived, e.g. {sorted(missing)[:5]}")
    sys.exit(1)
EOF
echo "$kills kills; every acknowledged message delivered"
echo "3 passed, 0 failed"
