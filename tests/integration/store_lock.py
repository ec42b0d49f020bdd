"""One engine per store. A second `junction run` on a store in use exits at once
naming the running engine's pid, and the running one serves on; `junction
messages` reads beside a running engine without touching its intake journal;
an engine started the moment the previous one is SIGKILLed waits for the lock
and recovers every acknowledged message."""
import glob
import os
import signal
import subprocess
import sys
import time

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
LOAD = os.environ["MLLPLOAD"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, engine_dir, finish, free_port, port_open, wait_for  # noqa: E402

check = Checks()
port = free_port()
tmp = engine_dir("junction-store-lock-", {"intake": f"channel: intake\nsource: {{ type: mllp, port: {port}, "
                                                     "host: 127.0.0.1 }\nstorage: development\ndestinations: []\n"})
log = open(f"{tmp}/junction.log", "a")
SAMPLE = os.path.join(SRC, "samples", "hl7", "orm_o01_nw.hl7")


def start():
    return subprocess.Popen([BIN, "run"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT)


def load(count, prefix):
    r = subprocess.run([LOAD, "127.0.0.1", str(port), "--count", str(count), "--conns", "2", "--msg", SAMPLE,
                        "--prefix", prefix, "--acked", f"{tmp}/{prefix}.acked"], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def messages(*args):
    return subprocess.run([BIN, "messages", "--config", f"{tmp}/junction.yaml", *args],
                          capture_output=True, text=True)


def stored_total():
    r = messages("--channel", "intake", "--counts")
    return sum(int(line.split()[1]) for line in r.stdout.splitlines() if len(line.split()) == 2)


def journal():
    return {p: os.path.getsize(p) for p in glob.glob(f"{tmp}/var/junction.db-jnl.*")}


procs = []
try:
    first = start()
    procs.append(first)
    check(wait_for(lambda: port_open(port), timeout=10), "the engine listens")
    rc, out = load(300, "A")
    check(rc == 0, f"300 messages acknowledged: {out}")

    # A second engine on the same store: refused at once, naming the first.
    began = time.time()
    second = subprocess.run([BIN, "run"], cwd=tmp, capture_output=True, text=True, timeout=30)
    check(second.returncode == 1, f"a second engine exits 1, got {second.returncode}")
    check(f"is in use by process {first.pid}" in second.stderr, f"it names the holder: {second.stderr!r}")
    check(time.time() - began < 5, "it exits within the lock's bounded wait")
    check(first.poll() is None, "the first engine runs on")

    # `junction messages` beside the running engine: reads, changes nothing.
    before = journal()
    check(len(before) >= 1, "the engine has a live journal segment")
    check(wait_for(lambda: stored_total() == 300, timeout=10), "messages counts the 300 stored messages")
    shown = messages("--show", "300")
    check(shown.returncode == 0 and "ORM^O01" in shown.stdout, f"messages --show reads a recent message's raw: {shown.stderr}")
    after = journal()
    check(set(after) == set(before) and all(after[p] >= before[p] for p in before),
          f"the engine's journal is left as it was: {before} -> {after}")
    rc, out = load(100, "B")
    check(rc == 0, f"the engine still acknowledges: {out}")

    # SIGKILL, and the next engine started the same moment: it waits for the
    # lock and then holds every acknowledged message.
    rc_pending = subprocess.Popen([LOAD, "127.0.0.1", str(port), "--count", "2000", "--conns", "2", "--msg", SAMPLE,
                                   "--prefix", "C", "--acked", f"{tmp}/C.acked", "--reconnect", "20"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.3)
    first.send_signal(signal.SIGKILL)
    third = start()
    procs.append(third)
    rc_pending.wait(60)
    first.wait(10)
    check(third.poll() is None, "the engine started during the kill runs")
    acked = sum(1 for _ in open(f"{tmp}/C.acked")) if os.path.exists(f"{tmp}/C.acked") else 0
    check(acked > 0, "messages were acknowledged around the kill")
    check(wait_for(lambda: stored_total() >= 400 + acked, timeout=15),
          f"every acknowledged message is stored: {stored_total()} stored, {400 + acked} acknowledged")
finally:
    finish(procs, check, tmp)
check.exit()
