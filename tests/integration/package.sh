#!/usr/bin/env bash
# The Debian package (scripts/package.sh, built in build-package/ or
# JUNCTION_PACKAGE_BUILD_DIR): its control data (Depends from the linked
# libraries, every /etc file a conffile, the maintainer scripts), its files
# unpacked into a temporary root (the binary runs, the /etc config validates,
# the systemd unit passes systemd-analyze verify, the console is served), and, as root on a machine
# without the package, a real install: the junction user, /var/lib/junction,
# one HL7 order through the installed engine run as that user, a reinstall,
# then a purge that leaves the machine as it was found.
set -euo pipefail
SRC="${JUNCTION_SOURCE_DIR:?}"
PKG_BUILD="${JUNCTION_PACKAGE_BUILD_DIR:-$SRC/build-package}"
T="$(mktemp -d)"
RUN_PID=""; NOTIFY_PID=""; INSTALLED=""
cleanup() {
  if [ -n "$RUN_PID" ]; then kill -TERM "$RUN_PID" 2>/dev/null || true; wait "$RUN_PID" 2>/dev/null || true; fi
  if [ -n "$NOTIFY_PID" ]; then kill "$NOTIFY_PID" 2>/dev/null || true; wait "$NOTIFY_PID" 2>/dev/null || true; fi
  if [ -n "$INSTALLED" ]; then
    DEBIAN_FRONTEND=noninteractive dpkg --purge junction >"$T/purge.log" 2>&1 ||
      { echo "cleanup: dpkg --purge junction failed:"; sed 's/^/  | /' "$T/purge.log"; }
  fi
  rm -rf "$T"
}
trap cleanup EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }
expect() {  # expect DESCRIPTION EXPECTED_RC CMD...
  local what="$1" want="$2" rc=0; shift 2
  "$@" >"$T/out" 2>"$T/err" || rc=$?
  if [ "$rc" = "$want" ]; then ok; else bad "$what: exit $rc, wanted $want"; sed 's/^/  | /' "$T/out" "$T/err" | tail -10; fi
}
contains() {  # contains DESCRIPTION FILE TEXT
  if grep -qF -- "$3" "$2"; then ok; else bad "$1: '$3' not in output"; sed 's/^/  | /' "$2" | head -10; fi
}
wait_for() {  # wait_for TENTHS CMD...: until CMD succeeds, at most TENTHS tenths of a second
  local n="$1" i; shift
  for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done
  return 1
}
exited() {  # exited PID: the process is gone or a zombie
  local state
  state="$(sed -E 's/.*\) ([A-Z]).*/\1/' "/proc/$1/stat" 2>/dev/null)" || return 0
  [ -z "$state" ] || [ "$state" = Z ]
}

# ---------------------------------------------------------------- build
start=$SECONDS
if JUNCTION_PACKAGE_BUILD_DIR="$PKG_BUILD" bash "$SRC/scripts/package.sh" >"$T/package.log" 2>&1; then ok; else
  bad "scripts/package.sh failed"; sed 's/^/  | /' "$T/package.log" | tail -30; exit 1
fi
echo "package built in $((SECONDS - start)) s"
DEB="$(tail -1 "$T/package.log")"
version="$(sed -nE 's/^project\(junction VERSION ([0-9.]+).*/\1/p' "$SRC/CMakeLists.txt")"
arch="$(dpkg --print-architecture)"
[ "$DEB" = "$PKG_BUILD/junction_${version}_${arch}.deb" ] && [ -f "$DEB" ] && ok ||
  bad "package path: '$DEB', wanted $PKG_BUILD/junction_${version}_${arch}.deb"

# ---------------------------------------------------------------- control data
dpkg-deb -f "$DEB" Package Version Architecture Section Depends > "$T/control"
contains "package name" "$T/control" "Package: junction"
contains "package version" "$T/control" "Version: $version"
contains "package section" "$T/control" "Section: net"
dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed 's/^ *//' > "$T/depends"
for dep in libpoco libdcmtk liblua5.4 libsqlite3 libyaml-cpp libxerces-c liburing libstdc++6 libc6; do
  grep -q "^$dep" "$T/depends" && ok || bad "Depends has no $dep: $(paste -sd, "$T/depends")"
done
grep -qx "adduser" "$T/depends" && ok || bad "Depends has no adduser: $(paste -sd, "$T/depends")"

# Every file under /etc is a conffile, and the shipped channels and transforms are there.
dpkg-deb -I "$DEB" conffiles > "$T/conffiles" 2>&1 || bad "the package has no conffiles"
dpkg-deb -c "$DEB" | awk '{ print $NF }' | sed 's#^\./#/#' | grep '^/etc/.*[^/]$' | sort > "$T/etc-files"
{ echo /etc/junction/junction.yaml
  for f in "$SRC"/channels/*.yaml; do echo "/etc/junction/channels/$(basename "$f")"; done
  (cd "$SRC/transforms" && find . -name '*.lua' | sed 's#^\./#/etc/junction/transforms/#')
} | sort > "$T/want-etc"
cmp -s "$T/etc-files" "$T/want-etc" && ok || { bad "files under /etc: not the config, channels and transforms"; diff "$T/want-etc" "$T/etc-files" | sed 's/^/  | /'; }
sort "$T/conffiles" | cmp -s - "$T/want-etc" && ok || { bad "conffiles does not list every /etc file"; sort "$T/conffiles" | diff "$T/want-etc" - | sed 's/^/  | /'; }
dpkg-deb -e "$DEB" "$T/control.d"
for s in postinst prerm postrm; do
  [ -x "$T/control.d/$s" ] && sh -n "$T/control.d/$s" && ok || bad "maintainer script $s missing, not executable or not valid sh"
done

# ---------------------------------------------------------------- unpacked files
R="$T/root"
dpkg -x "$DEB" "$R"
for f in usr/bin/junction lib/systemd/system/junction.service usr/share/junction/samples/hl7/orm_o01_nw.hl7 \
         usr/share/doc/junction/README.md usr/share/doc/junction/docs/channels.md \
         usr/share/doc/junction/docs/lua.md usr/share/doc/junction/docs/channel.schema.json; do
  [ -f "$R/$f" ] && ok || bad "/$f is not in the package"
done
expect "the unpacked junction version" 0 "$R/usr/bin/junction" version
contains "version" "$T/out" "junction $version"
channels=$(ls "$SRC"/channels/*.yaml | wc -l)
expect "validate the unpacked /etc/junction/junction.yaml" 0 "$R/usr/bin/junction" validate --config "$R/etc/junction/junction.yaml"
contains "every shipped channel valid" "$T/out" "$channels channel(s) valid, 0 invalid"
contains "the store is in /var/lib/junction" "$T/out" "store: sqlite /var/lib/junction/junction.db (sync full)"
contains "channels from /etc/junction/channels" "$T/out" "channels: $R/etc/junction/channels/"
# The channels write under /var/lib/junction, not under the read-only /etc/junction.
if grep -nE "(^|[ {,:\"'])var/" "$R"/etc/junction/channels/*.yaml > "$T/relative"; then
  bad "packaged channels keep relative var/ paths"; sed 's/^/  | /' "$T/relative"
else ok; fi
contains "ris-orders archives to /var/lib/junction" "$R/etc/junction/channels/ris-orders.yaml" "directory: /var/lib/junction/out/orders"
for f in $(cd "$SRC/transforms" && find . -name '*.lua' | sed 's#^\./##'); do
  cmp -s "$SRC/transforms/$f" "$R/etc/junction/transforms/$f" && ok || bad "transforms/$f differs in the package"
done

# The console is built into the binary: the unpacked engine serves it at / on its admin port
# (a port of its own: the installed engine's 8080 may be taken by tests running beside this one).
mkdir -p "$T/console/channels"
cport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'store: { path: %s/console/junction.db, sync: normal }\nchannels: channels/\nadmin: { port: %s }\n' "$T" "$cport" > "$T/console/junction.yaml"
(cd "$T/console" && exec "$R/usr/bin/junction" run --config junction.yaml) >"$T/console/run.out" 2>&1 & CONSOLE_PID=$!
wait_for 100 grep -q "running" "$T/console/run.out" && ok || bad "the unpacked engine did not start: $(cat "$T/console/run.out")"
# (The admin server starts on a thread of its own: it may answer moments after "running".)
console_served() {
  /usr/bin/python3 -c 'import sys, urllib.request; p = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=5).read().decode(); sys.exit("/console/console.js" not in p)' "$cport" 2>/dev/null
}
wait_for 100 console_served && ok || bad "the unpacked engine does not serve the console at / (port $cport): $(cat "$T/console/run.out")"
kill "$CONSOLE_PID" 2>/dev/null; wait "$CONSOLE_PID" 2>/dev/null || true

# ---------------------------------------------------------------- systemd unit
UNIT="$R/lib/systemd/system/junction.service"
for line in "Type=notify" "ExecStart=/usr/bin/junction run --config /etc/junction/junction.yaml" \
            "ExecReload=/bin/kill -HUP \$MAINPID" "User=junction" "Group=junction" \
            "WorkingDirectory=/var/lib/junction" "ProtectSystem=strict" "ReadWritePaths=/var/lib/junction" \
            "WantedBy=multi-user.target"; do
  grep -qxF -- "$line" "$UNIT" && ok || bad "junction.service has no '$line'"
done
if command -v systemd-analyze >/dev/null 2>&1; then
  # verify checks that ExecStart's binary exists: point it at the unpacked one.
  mkdir -p "$T/unit" "$T/broken"
  sed "s#^ExecStart=/usr/bin/junction #ExecStart=$R/usr/bin/junction #" "$UNIT" > "$T/unit/junction.service"
  grep -q "^ExecStart=$R/usr/bin/junction " "$T/unit/junction.service" && ok || bad "ExecStart not rewritten for verify"
  verify() { systemd-analyze verify --man=no --recursive-errors=no "$1" >"$T/verify" 2>&1 && [ ! -s "$T/verify" ]; }
  if verify "$T/unit/junction.service"; then ok; else bad "systemd-analyze verify junction.service"; sed 's/^/  | /' "$T/verify"; fi
  # The same check must catch a bad setting (systemd only warns and ignores it).
  sed 's/^Type=notify$/Type=notfy/' "$T/unit/junction.service" > "$T/broken/junction.service"
  if verify "$T/broken/junction.service"; then bad "systemd-analyze verify passed a unit with Type=notfy"; else ok; fi
else
  echo "skip: systemd-analyze not found, the unit file is not verified"
fi

# ---------------------------------------------------------------- real install
port_in_use() {
  if command -v ss >/dev/null 2>&1; then ss -Hltn "sport = :$1" | grep -q .
  else (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; fi
}
skip=""
if [ "$(id -u)" != 0 ]; then skip="not running as root"
elif dpkg-query -W junction >/dev/null 2>&1; then skip="dpkg already knows a junction package"
elif getent passwd junction >/dev/null || getent group junction >/dev/null; then skip="a junction user or group exists"
elif [ -e /var/lib/junction ] || [ -e /etc/junction ]; then skip="/var/lib/junction or /etc/junction exists"
elif ! command -v runuser >/dev/null 2>&1; then skip="runuser not found"
else
  for p in 6661 6663 11112 11113; do
    if port_in_use "$p"; then skip="port $p is in use (the shipped channels listen on 6661, 6663, 11112, 11113)"; break; fi
  done
fi

if [ -n "$skip" ]; then
  echo "skip: real install (dpkg -i, run as the junction user, purge): $skip"
else
  INSTALLED=1
  expect "dpkg -i" 0 env DEBIAN_FRONTEND=noninteractive dpkg -i "$DEB"
  [ "$(dpkg-query -W -f='${Status}' junction 2>/dev/null)" = "install ok installed" ] && ok || bad "junction is not installed"
  getent passwd junction >/dev/null && ok || bad "no junction user"
  getent group junction >/dev/null && ok || bad "no junction group"
  [ "$(getent passwd junction | cut -d: -f6)" = /var/lib/junction ] && ok || bad "junction's home: $(getent passwd junction)"
  [ "$(stat -c '%U:%G %a' /var/lib/junction 2>&1)" = "junction:junction 750" ] && ok ||
    bad "/var/lib/junction: $(stat -c '%U:%G %a' /var/lib/junction 2>&1), wanted junction:junction 750"
  [ "$(stat -c '%U:%G %a' /etc/junction/junction.yaml 2>&1)" = "root:junction 640" ] && ok ||
    bad "/etc/junction/junction.yaml: $(stat -c '%U:%G %a' /etc/junction/junction.yaml 2>&1), wanted root:junction 640 (it may hold passwords)"
  dpkg-query -W -f='${Conffiles}\n' junction > "$T/dpkg-conffiles"
  contains "dpkg records the conffiles" "$T/dpkg-conffiles" "/etc/junction/junction.yaml"
  expect "installed validate as the junction user" 0 runuser -u junction -- /usr/bin/junction validate --config /etc/junction/junction.yaml
  contains "installed validate" "$T/out" "$channels channel(s) valid, 0 invalid"
  if [ -d /run/systemd/system ]; then
    # Under systemd, postinst enabled and started the service (Type=notify: active
    # once the engine sent READY=1). Stopped for the run below, which needs its ports.
    systemctl is-enabled --quiet junction.service && ok || bad "postinst did not enable junction.service"
    wait_for 100 systemctl is-active --quiet junction.service && ok ||
      { bad "junction.service is not active"; systemctl status --no-pager junction.service | sed 's/^/  | /' | tail -15; }
    systemctl stop junction.service
  fi

  # The engine as the service runs it: the junction user in /var/lib/junction, with
  # a NOTIFY_SOCKET (abstract) that records what it tells systemd.
  notify="junction-package-test-$$"
  /usr/bin/python3 - "$notify" "$T/notify" <<'PY' & NOTIFY_PID=$!
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[1])
with open(sys.argv[2], "w") as out:
    out.write("listening\n"); out.flush()
    while True:
        m = s.recv(4096).decode()
        out.write(m.replace("\n", " ") + "\n"); out.flush()
        if "STOPPING=1" in m:
            break
PY
  wait_for 50 grep -q listening "$T/notify" 2>/dev/null || bad "the notify listener did not start"
  (cd /var/lib/junction && NOTIFY_SOCKET="@$notify" exec runuser -u junction -- \
     /usr/bin/junction run --config /etc/junction/junction.yaml) >"$T/run.out" 2>&1 & RUN_PID=$!
  wait_for 100 grep -q "running" "$T/run.out" && ok || bad "the installed engine did not start"
  # The channels that ship disabled (they need peers named first) are not started.
  enabled=$(grep -L '^enabled: false' "$SRC"/channels/*.yaml | wc -l)
  contains "every enabled channel started" "$T/run.out" "$enabled channel(s) started, 0 skipped"
  wait_for 50 grep -q "READY=1" "$T/notify" && ok || bad "no READY=1 on NOTIFY_SOCKET"
  ENGINE="$(pgrep -P "$RUN_PID" -x junction || true)"
  [ -n "$ENGINE" ] && [ "$(stat -c %U "/proc/$ENGINE")" = junction ] && ok || bad "the engine does not run as junction (pid '$ENGINE')"
  expect "hl7 send an order to the installed engine" 0 /usr/bin/junction hl7 send 127.0.0.1:6661 /usr/share/junction/samples/hl7/orm_o01_nw.hl7
  orders=/var/lib/junction/out/orders
  wait_for 50 sh -c "ls $orders/*.hl7 >/dev/null 2>&1" && ok || bad "no file in $orders"
  [ "$(stat -c %U "$orders"/*.hl7 2>/dev/null | sort -u)" = junction ] && ok || bad "the order file is not owned by junction"
  [ -f /var/lib/junction/junction.db ] && ok || bad "no store /var/lib/junction/junction.db"
  if [ -n "$ENGINE" ]; then
    kill -HUP "$ENGINE"   # systemctl reload
    wait_for 50 grep -q "RELOADING=1" "$T/notify" && ok || bad "no RELOADING=1 on SIGHUP"
    wait_for 50 grep -q "reloaded" "$T/run.out" && ok || bad "SIGHUP did not reload the channels"
    kill -TERM "$ENGINE"
  fi
  if wait_for 100 exited "$RUN_PID"; then
    rc=0; wait "$RUN_PID" || rc=$?
    [ "$rc" = 0 ] && ok || { bad "the engine exited $rc on SIGTERM"; sed 's/^/  | /' "$T/run.out" | tail -10; }
  else
    bad "the engine did not stop within 10 s of SIGTERM"; kill -KILL "$ENGINE" 2>/dev/null || true; wait "$RUN_PID" || true
  fi
  RUN_PID=""
  contains "the engine says it stops" "$T/run.out" "stopping"
  wait_for 50 grep -q "STOPPING=1" "$T/notify" && ok || bad "no STOPPING=1 on NOTIFY_SOCKET"
  wait "$NOTIFY_PID" 2>/dev/null || true; NOTIFY_PID=""

  # Reinstalling (postinst configure with the old version) keeps the user and the state.
  expect "dpkg -i again" 0 env DEBIAN_FRONTEND=noninteractive dpkg -i "$DEB"
  [ "$(stat -c '%U:%G %a' /var/lib/junction 2>&1)" = "junction:junction 750" ] && ok || bad "/var/lib/junction after reinstall: $(stat -c '%U:%G %a' /var/lib/junction 2>&1)"
  ls "$orders"/*.hl7 >/dev/null 2>&1 && ok || bad "reinstall lost $orders"

  expect "dpkg --purge" 0 env DEBIAN_FRONTEND=noninteractive dpkg --purge junction
  INSTALLED=""
  getent passwd junction >/dev/null && bad "purge left the junction user" || ok
  getent group junction >/dev/null && bad "purge left the junction group" || ok
  for p in /var/lib/junction /etc/junction /usr/bin/junction /lib/systemd/system/junction.service /usr/share/junction /usr/share/doc/junction; do
    [ -e "$p" ] && bad "purge left $p" || ok
  done
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
