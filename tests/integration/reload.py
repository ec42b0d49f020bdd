"""`junction run` under a service manager: SIGHUP re-reads the channel folder
(a changed script is redeployed, an unchanged channel left alone, a new file's
channel started, a broken file leaves its running channel serving, a removed
file's channel stopped), the engine reports READY/RELOADING/STOPPING on
$NOTIFY_SOCKET as systemd's Type=notify expects, and SIGTERM still stops it
cleanly afterwards."""
import os
import signal
import socket
import subprocess
import sys
import tempfile

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, finish, free_port, port_open, wait_for  # noqa: E402

check = Checks()
tmp = tempfile.mkdtemp(prefix="junction-reload-")
SAMPLE = open(os.path.join(SRC, "samples", "hl7", "adt_a04.hl7"), "rb").read()


def write(path, text):
    full = os.path.join(tmp, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def channel(name, fn):
    write(f"channels/{name}.yaml",
          f"channel: {name}\n"
          f"source: {{ type: file, directory: in/{name}, poll_interval: 100ms }}\n"
          f"script: {name}.lua\n"
          f"transform: {fn}\n"
          f"destinations:\n"
          f"  - {{ name: out, type: file, directory: out/{name}, filename: \"${{MSH-10}}-${{id}}.hl7\" }}\n")


def script(name, fn, value):
    write(f"{name}.lua", f'function {fn}(msg) msg:set("ZRL-1", "{value}") end\n')


def outputs(name):
    # Not the hidden temporary file a file destination writes before its rename.
    d = os.path.join(tmp, "out", name)
    return sorted(f for f in os.listdir(d) if not f.startswith(".")) if os.path.isdir(d) else []


def send(name, tag):
    """Drops a file into the channel's folder; returns the text of the file it
    becomes in the channel's output folder, or None."""
    before = set(outputs(name))
    os.makedirs(os.path.join(tmp, "in", name), exist_ok=True)
    with open(os.path.join(tmp, "in", name, f"{tag}.hl7"), "wb") as f:
        f.write(SAMPLE)
    if not wait_for(lambda: set(outputs(name)) - before, timeout=10):
        return None
    new = sorted(set(outputs(name)) - before)[0]
    return open(os.path.join(tmp, "out", name, new)).read()


# The service manager's side: a datagram socket named by NOTIFY_SOCKET.
notify_path = os.path.join(tmp, "notify.sock")
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(notify_path)
notify.settimeout(15)


def next_state():
    try:
        return notify.recv(4096).decode()
    except socket.timeout:
        return ""


write("junction.yaml", "store: { path: var/junction.db, sync: normal }\nchannels: channels\n")
channel("alpha", "mark")
script("alpha", "mark", "one")
channel("beta", "mark")
script("beta", "mark", "beta")
P1, P2 = free_port(), free_port()


def listener(name, port):
    write(f"channels/{name}.yaml", f"channel: {name}\nsource: {{ type: mllp, port: {port} }}\ndestinations: []\n")


listener("delta", P1)
listener("epsilon", P2)

log = open(os.path.join(tmp, "junction.log"), "w")
env = dict(os.environ, NOTIFY_SOCKET=notify_path)
proc = subprocess.Popen([BIN, "run"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT, env=env)
try:
    check(next_state().startswith("READY=1"), "READY=1 once the channels run")
    out = send("alpha", "a1")
    check(out is not None and "ZRL|one" in out, f"alpha runs its first script: {out!r}")

    def reload():
        proc.send_signal(signal.SIGHUP)
        first, second = next_state(), next_state()
        check(first == "RELOADING=1", f"RELOADING=1 on SIGHUP, got {first!r}")
        check(second == "READY=1", f"READY=1 after the reload, got {second!r}")
        return check(proc.poll() is None, "the engine survives SIGHUP")

    def logged(text):
        return wait_for(lambda: text in open(os.path.join(tmp, "junction.log")).read(), timeout=5)

    # A changed script: alpha is redeployed, beta (unchanged) is left running.
    script("alpha", "mark", "two")
    if reload():
        check(logged("channel alpha: redeployed"), "the log names the redeployed channel")
        check(logged("0 added, 1 redeployed, 0 removed, 3 unchanged, 0 invalid"), "the reload's summary")
        out = send("alpha", "a2")
        check(out is not None and "ZRL|two" in out, f"alpha runs its new script: {out!r}")

    # A new file: its channel is added and started.
    channel("gamma", "mark")
    script("gamma", "mark", "gamma")
    if reload():
        check(logged("channel gamma: added"), "the log names the added channel")
        out = send("gamma", "g1")
        check(out is not None and "ZRL|gamma" in out, f"gamma runs once added: {out!r}")

    # A broken file: the running beta keeps serving, the error is reported.
    write("channels/beta.yaml", "channel: beta\nsource: { type: file, directory: [oops\n")
    if reload():
        check(logged("1 invalid (running versions kept)"), "the broken file is counted")
        check(logged("beta.yaml:"), "the broken file's error names it")
        out = send("beta", "b1")
        check(out is not None and "ZRL|beta" in out, f"beta keeps running its last good version: {out!r}")

    # A new version that cannot be deployed (its port is another channel's):
    # the old version is put back and serves on.
    listener("epsilon", P1)
    if reload():
        check(logged(f"port {P1} is already used by channel delta"), "the port clash is reported")
        check(port_open(P2), "epsilon still listens on its old port")

    # A removed file: its channel stops; files dropped for it stay where they are.
    os.remove(os.path.join(tmp, "channels", "alpha.yaml"))
    if reload():
        check(logged("channel alpha: removed"), "the log names the removed channel")
        before = outputs("alpha")
        os.makedirs(os.path.join(tmp, "in", "alpha"), exist_ok=True)
        with open(os.path.join(tmp, "in", "alpha", "a3.hl7"), "wb") as f:
            f.write(SAMPLE)
        check(not wait_for(lambda: outputs("alpha") != before, timeout=1.5), "a removed channel reads nothing")
        check(os.path.exists(os.path.join(tmp, "in", "alpha", "a3.hl7")), "the file for it is left in place")

    proc.send_signal(signal.SIGTERM)
    check(next_state() == "STOPPING=1", "STOPPING=1 on SIGTERM")
    try:
        rc = proc.wait(15)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0, f"exit 0 after SIGTERM, got {rc}")
finally:
    notify.close()
    finish([proc], check, tmp)
check.exit()
