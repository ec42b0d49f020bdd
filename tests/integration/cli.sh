#!/usr/bin/env bash
# The junction command line: version, help, hl7 parse (tree, JSON, errors),
# validate and run with good and bad configs.
set -u
BIN="${JUNCTION_BIN:?}"
SRC="${JUNCTION_SOURCE_DIR:?}"
T="$(mktemp -d)"
trap 'rm -rf "$T"; [ -n "${RUN_PID:-}" ] && kill "$RUN_PID" 2>/dev/null' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }
expect() {  # expect DESCRIPTION EXPECTED_RC CMD...
  local what="$1" want="$2"; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ "$rc" = "$want" ]; then ok; else bad "$what: exit $rc, wanted $want"; sed 's/^/  | /' "$T/err" | head -5; fi
}
contains() {  # contains DESCRIPTION FILE TEXT
  if grep -qF -- "$3" "$2"; then ok; else bad "$1: '$3' not in output"; sed 's/^/  | /' "$2" | head -10; fi
}

expect "version" 0 "$BIN" version
for lib in "junction " "POCO " "Xerces-C " "DCMTK " "yaml-cpp " "Lua 5.4" "SQLite "; do contains "version lists $lib" "$T/out" "$lib"; done
expect "no command" 2 "$BIN"
expect "unknown command" 2 "$BIN" frobnicate
for c in "run" "validate" "schema" "version" "hl7 parse" "hl7 send"; do
  expect "$c --help" 0 "$BIN" $c --help
  contains "$c --help shows usage" "$T/out" "usage: junction $c"
done

# hl7 parse: tree
expect "parse ORM" 0 "$BIN" hl7 parse "$SRC/samples/hl7/orm_o01_nw.hl7"
contains "tree has segment" "$T/out" "PID"
contains "tree has MSH-9.1" "$T/out" "    MSH-9.1  ORM"
grep -qE '^  PID-5(\[1\])?  ' "$T/out" && ok || bad "tree has PID-5"
grep -qE '^    PID-3(\[1\])?\.1  ' "$T/out" && ok || bad "tree has PID-3.1"
expect "parse ORU" 0 "$BIN" hl7 parse "$SRC/samples/hl7/oru_r01.hl7"
contains "tree numbers repeated segments" "$T/out" "OBX[20]"
# escapes are decoded in the tree
printf 'MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\rOBX|1|TX|||a\\F\\b\\S\\c\r' > "$T/esc.hl7"
expect "parse escapes" 0 "$BIN" hl7 parse "$T/esc.hl7"
contains "escape decoded" "$T/out" "OBX-5  a|b^c"

# hl7 parse --json is valid JSON with positions
expect "parse json" 0 "$BIN" hl7 parse "$SRC/samples/hl7/orm_o01_nw.hl7" --json
if /usr/bin/python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
assert d["type"]=="ORM^O01", d["type"]
segs=[s["id"] for s in d["segments"]]
assert segs[0]=="MSH" and "PID" in segs and "ORC" in segs, segs
msh=d["segments"][0]["fields"]
assert msh["1"]=="|" and msh["9"]["1"]=="ORM", msh
' "$T/out"; then ok; else bad "json content"; fi
expect "parse batch json" 0 "$BIN" hl7 parse "$SRC/samples/hl7/batch.hl7" --json
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert isinstance(d,list) and len(d)==3' "$T/out" && ok || bad "batch json is a list of 3"

# hl7 parse errors carry the byte offset
printf 'MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rP*D|1\r' > "$T/bad.hl7"
expect "parse bad segment" 1 "$BIN" hl7 parse "$T/bad.hl7"
contains "error has offset" "$T/err" "at byte 43"
head -c 3000 /dev/urandom > "$T/garbage.hl7"
expect "parse garbage" 1 "$BIN" hl7 parse "$T/garbage.hl7"
contains "garbage explained" "$T/err" "at byte"
expect "parse missing file" 1 "$BIN" hl7 parse "$T/nope.hl7"
expect "parse no file" 2 "$BIN" hl7 parse

# validate / run
mkdir -p "$T/good/channels"
printf 'channels: channels\nadmin: { port: 18080 }\n' > "$T/good/junction.yaml"
cat > "$T/good/channels/orders.yaml" <<'EOF'
channel: orders
source: { type: file, directory: in, poll_interval: 100ms }
destinations:
  - { name: out, type: file, directory: out }
EOF
printf 'channel: [oops\n' > "$T/good/channels/broken.yaml"
cat > "$T/good/channels/typo.yaml" <<'EOF'
channel: typo
source: { type: file, directory: in2 }
destinations:
  - { name: out, type: file, directory: out, filname: x }
EOF
cat > "$T/good/channels/nofn.yaml" <<'EOF'
channel: nofn
source: { type: file, directory: in3 }
script: t.lua
transform: missing_function
destinations:
  - { name: out, type: file, directory: out3 }
EOF
printf 'function present(msg) end\n' > "$T/good/t.lua"
expect "validate reports broken channels" 1 "$BIN" validate --config "$T/good/junction.yaml"
contains "broken channel has file:line" "$T/err" "broken.yaml:"
contains "unknown key with file:line" "$T/err" "typo.yaml:4:"
contains "unknown key named" "$T/err" "unknown key 'filname'"
contains "missing Lua function" "$T/err" "function 'missing_function' is not defined"
contains "missing Lua function has file:line" "$T/err" "nofn.yaml:4:12: transform: function 'missing_function'"
contains "good channel listed" "$T/out" "channel orders"
contains "counts" "$T/out" "1 channel(s) valid, 3 invalid"
rm "$T/good/channels/broken.yaml" "$T/good/channels/typo.yaml" "$T/good/channels/nofn.yaml"
# Every problem of a file is reported, each with file:line:column.
mkdir -p "$T/many/channels"
printf 'channels: channels\n' > "$T/many/junction.yaml"
cat > "$T/many/channels/many.yaml" <<'EOF'
channel: many
source: { type: mllp, port: 99999, hots: x }
script: t.lua
transform: present
workers: lots
destinations:
  - { name: out, type: file, directory: out, filname: x }
  - { name: out2, type: nosuch }
EOF
printf 'function present(msg) end\n' > "$T/many/t.lua"
expect "validate reports every problem of a file" 1 "$BIN" validate --config "$T/many/junction.yaml"
contains "problem 1: port" "$T/err" "many.yaml:2:29: source (mllp).port"
contains "problem 2: unknown source key" "$T/err" "many.yaml:2:36: unknown key 'hots' in source (mllp)"
contains "problem 3: workers" "$T/err" "many.yaml:5:10: the channel.workers must be a whole number"
contains "problem 4: unknown destination key" "$T/err" "many.yaml:7:46: unknown key 'filname'"
contains "problem 5: unknown destination type" "$T/err" "many.yaml:8:25: unknown destination type 'nosuch'"
[ "$(grep -c 'workers must be' "$T/err")" = 1 ] && ok || bad "a problem is told once"
# Each connector type's settings are read by validate as a run reads them: a
# value out of its bounds (or none of its choices, or of a wrong type) is told
# with file:line:column, not first when the channel starts.
mkdir -p "$T/bounds/channels"
printf 'channels: channels\n' > "$T/bounds/junction.yaml"
chan() { printf 'channel: %s\nsource: %s\ndestinations:\n  - %s\n' "$1" "$2" "$3" > "$T/bounds/channels/$1.yaml"; }
OUT='{ name: out, type: file, directory: out }'
chan s-mllp '{ type: mllp, port: 70000 }' "$OUT"
chan s-mllp-tls '{ type: mllp, port: 6661, tls: { cert: a.pem, key: a.key, handshake_timeout: 1h } }' "$OUT"
chan s-file '{ type: file, directory: in, after_read: copy }' "$OUT"
chan s-channel '{ type: channel, port: 1 }' "$OUT"
chan s-dicom '{ type: dicom, port: 11112, max_associations: 0 }' "$OUT"
chan s-dicom-mwl '{ type: dicom_mwl, port: 11113, max_pdu: 1MB }' "$OUT"
chan d-mllp '{ type: channel }' '{ name: o, type: mllp, host: h, port: 2575, window: 0 }'
chan d-file '{ type: channel }' '{ name: o, type: file, directory: out, append: maybe }'
chan d-channel '{ type: channel }' '{ name: o, type: channel, retry: { attempts: 0 } }'
chan d-worklist '{ type: channel }' '{ name: o, type: worklist, threads: 65 }'
chan d-dicom '{ type: channel }' '{ name: o, type: dicom, host: h, port: 104, called_ae: PACS, timeout: 500ms }'
expect "validate reports each connector's bad settings" 1 "$BIN" validate --config "$T/bounds/junction.yaml"
contains "mllp source: port" "$T/err" "s-mllp.yaml:2:29: source (mllp).port must be between 1 and 65535"
contains "mllp source: tls" "$T/err" "s-mllp-tls.yaml:2:86: tls.handshake_timeout must be from 100ms to 5m"
contains "file source: after_read" "$T/err" "s-file.yaml:2:50: source (file).after_read cannot be 'copy'"
contains "channel source: no settings" "$T/err" "s-channel.yaml:2:26: unknown key 'port' in source (channel)"
contains "dicom source: max_associations" "$T/err" "s-dicom.yaml:2:55: source (dicom).max_associations must be between 1 and 1000"
contains "dicom_mwl source: max_pdu" "$T/err" "s-dicom-mwl.yaml:2:50: source (dicom_mwl).max_pdu must be between 4KB and 128KB"
contains "mllp destination: window" "$T/err" "d-mllp.yaml:4:57: destination (mllp).window must be between 1 and 1000"
contains "file destination: append" "$T/err" "d-file.yaml:4:52: destination (file).append must be true or false"
contains "channel destination: retry" "$T/err" "d-channel.yaml:4:50: retry.attempts must be between 1 and 1000000"
contains "channel destination: channel" "$T/err" "d-channel.yaml:4:5: missing key 'channel' in destination (channel)"
contains "worklist destination: threads" "$T/err" "d-worklist.yaml:4:41: destination (worklist).threads must be between 1 and 64"
contains "dicom destination: timeout" "$T/err" "d-dicom.yaml:4:75: destination (dicom).timeout must be at least 1s"
contains "none valid" "$T/out" "0 channel(s) valid, 11 invalid"
expect "validate good" 0 "$BIN" validate --config "$T/good/junction.yaml"
(cd "$T/good" && "$BIN" validate >"$T/out" 2>"$T/err"); [ $? = 0 ] && ok || bad "validate finds ./junction.yaml"
contains "cwd config used" "$T/out" "junction.yaml"
printf 'store: { type: sqlite }\nadmn: { port: 1 }\n' > "$T/bad.yaml"
expect "validate bad config" 1 "$BIN" validate --config "$T/bad.yaml"
contains "bad config file:line" "$T/err" "bad.yaml:2:1: unknown key 'admn'"
expect "validate stray argument" 2 "$BIN" validate --bogus
printf 'store: { type: postgres, url: "postgresql://j@localhost/j" }\n' > "$T/pg.yaml"
expect "validate rejects a postgres store" 1 "$BIN" validate --config "$T/pg.yaml"
contains "postgres store: not available" "$T/err" "store type 'postgres' is not available in this build"
expect "run rejects a postgres store" 1 "$BIN" run --config "$T/pg.yaml"
expect "validate the shipped channels" 0 "$BIN" validate --config "$SRC/junction.yaml"
expect "schema" 0 "$BIN" schema
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "mllp" in json.dumps(d["properties"]["source"])' "$T/out" && ok || bad "schema is JSON naming mllp"
cmp -s "$T/out" "$SRC/docs/channel.schema.json" && ok || bad "docs/channel.schema.json is current (scripts/docs.sh)"
expect "schema --markdown" 0 "$BIN" schema --markdown
contains "the markdown has the mllp source's table" "$T/out" "| \`port\` | integer, from 1 to 65535 | required | TCP port to listen on |"
expect "schema with a stray argument" 2 "$BIN" schema --bogus

"$BIN" run --config "$T/good/junction.yaml" >"$T/run.out" 2>&1 & RUN_PID=$!
for i in $(seq 50); do grep -q "running" "$T/run.out" && break; sleep 0.1; done
contains "run starts" "$T/run.out" "1 channel(s) started"
cp "$SRC/samples/hl7/adt_a04.hl7" "$T/good/in/a.hl7"
for i in $(seq 50); do [ -n "$(ls "$T/good/out" 2>/dev/null)" ] && break; sleep 0.1; done
[ -n "$(ls "$T/good/out" 2>/dev/null)" ] && ok || bad "run moves a file through the channel"
kill -TERM "$RUN_PID"; wait "$RUN_PID"; rc=$?; RUN_PID=
[ "$rc" = 0 ] && ok || bad "run exits 0 on SIGTERM (got $rc)"
contains "run stops" "$T/run.out" "stopping"
contains "run reports counts" "$T/run.out" "channel orders: received 1, sent 1"
# Patient data: nothing the engine created is readable by other users.
for f in "$T"/good/var/junction.db* "$T"/good/out/*; do
  mode=$(stat -c %a "$f")
  [ $((8#$mode & 8#007)) = 0 ] && ok || bad "$f is mode $mode (others have access)"
done
expect "run with bad config" 1 "$BIN" run --config "$T/bad.yaml"
# A port another process holds: the channel is counted as failed, not started.
TAKEN=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 -c "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0',$TAKEN)); s.listen(); time.sleep(8)" & HOLDER=$!
mkdir -p "$T/taken/channels"; printf 'store: { path: var/j.db, sync: normal }\n' > "$T/taken/junction.yaml"
printf 'channel: taken\nsource: { type: mllp, port: %s }\ndestinations: []\n' "$TAKEN" > "$T/taken/channels/t.yaml"
sleep 0.5
"$BIN" run --config "$T/taken/junction.yaml" >"$T/taken.out" 2>&1 & RUN_PID=$!
for i in $(seq 50); do grep -q "running" "$T/taken.out" && break; sleep 0.1; done
contains "a taken port fails the channel" "$T/taken.out" "[taken] failed to start: source did not start"
contains "and it is not counted as started" "$T/taken.out" "running, 0 channel(s) started"
kill -TERM "$RUN_PID"; wait "$RUN_PID"; RUN_PID=; kill "$HOLDER" 2>/dev/null; wait "$HOLDER" 2>/dev/null
expect "messages lists the stored message" 0 "$BIN" messages --config "$T/good/junction.yaml" --channel orders
contains "messages shows the control id" "$T/out" "ADT0001"

# test: dry run of a shipped channel on the samples
expect "test ris-orders" 0 "$BIN" test ris-orders --config "$SRC/junction.yaml" --input "$SRC/samples/hl7/orm_o01_nw.hl7" "$SRC/samples/hl7/orm_o01_ca.hl7" "$SRC/samples/hl7/adt_a04.hl7"
contains "test shows the route" "$T/out" "route: archive"
contains "test routes cancels" "$T/out" "route: cancellations"
contains "test shows filtered" "$T/out" "status: FILTERED"
contains "test shows the output" "$T/out" "PID|1||MRN482913^^^CITYHOSP^MR~7701019876^^^NATIONAL^NI||DOE^JANE^MARIE^^MRS"
printf 'function normalize_order(msg) error("broken on purpose") end\nfunction is_order(msg) return true end\n' > "$T/broken.lua"
sed "s#transforms/ris_orders.lua#$T/broken.lua#" "$SRC/channels/ris-orders.yaml" > "$T/broken.yaml"
expect "test fails on a script error" 1 "$BIN" test "$T/broken.yaml" --config "$SRC/junction.yaml" --input "$SRC/samples/hl7/orm_o01_nw.hl7"
contains "script error has file:line" "$T/out" "broken.lua:1:"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
