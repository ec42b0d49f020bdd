"""A full disk. The store lives on a small tmpfs: when it fills under load,
every sender is answered at once (AA while there was room, then AE), nothing
acknowledged is lost, and once space returns the engine accepts messages
again and delivers everything, with no restart and nothing left QUEUED. A
disk budget (store.min_free) refuses new messages before the disk is full.
With little free space at start, the intake journal takes smaller segments; with
too little, the engine says how much it needs. Needs root (mount)."""
import os
import signal
import subprocess
import sys
import tempfile
import time

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
LOAD = os.environ["MLLPLOAD"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, free_port, port_open, stop, wait_for  # noqa: E402
from mllp_peer import Receiver  # noqa: E402

if os.geteuid() != 0:
    print("disk_full: needs root to mount a tmpfs; 0 passed, 0 failed")
    sys.exit(0)

check = Checks()
SAMPLE = os.path.join(SRC, "samples", "hl7", "orm_o01_nw.hl7")
peer = free_port()
receiver = Receiver(peer)
mounts, procs, dirs = [], [], []


def setup(size_mb, store_extra="", sync="full"):
    """A config folder whose var/ is a tmpfs of size_mb; returns (dir, port)."""
    d = tempfile.mkdtemp(prefix="junction-disk-full-")
    dirs.append(d)
    os.makedirs(f"{d}/channels")
    os.makedirs(f"{d}/var")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", f"{d}/var"], check=True)
    mounts.append(f"{d}/var")
    port = free_port()
    with open(f"{d}/junction.yaml", "w") as f:
        f.write(f"store: {{ path: var/junction.db, sync: {sync}{store_extra} }}\n")
    with open(f"{d}/channels/a.yaml", "w") as f:
        f.write(f"""channel: a
storage: development
source: {{ type: mllp, port: {port}, host: 127.0.0.1 }}
destinations:
  - {{ name: out, type: mllp, host: 127.0.0.1, port: {peer}, retry: {{ attempts: 1000000, backoff: 100ms }} }}
""")
    return d, port


def run(d):
    p = subprocess.Popen([BIN, "run"], cwd=d, stdout=open(f"{d}/junction.log", "a"), stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def log(d):
    return open(f"{d}/junction.log").read()


def load(port, count, prefix, d):
    r = subprocess.run([LOAD, "127.0.0.1", str(port), "--count", str(count), "--conns", "4", "--msg", SAMPLE,
                        "--prefix", prefix, "--acked", f"{d}/{prefix}.acked", "--timeout-ms", "5000"],
                       capture_output=True, text=True)
    fields = dict(kv.split("=", 1) for kv in r.stdout.split() if "=" in kv)
    acked = {line.strip() for line in open(f"{d}/{prefix}.acked") if line.strip()}
    return fields, acked


def send_one(port):
    r = subprocess.run([BIN, "hl7", "send", f"127.0.0.1:{port}", SAMPLE, "--timeout", "5"],
                       capture_output=True, text=True)
    return r.returncode == 0


def counts(d):
    r = subprocess.run([BIN, "messages", "--config", f"{d}/junction.yaml", "--channel", "a", "--counts"],
                       capture_output=True, text=True)
    return dict(line.split() for line in r.stdout.splitlines() if len(line.split()) == 2)


try:
    # 1. The disk fills under load.
    # 96 MB: the journal's segment takes 32, the filler 56, what fills up is the
    # 8 MB left for SQLite. Freeing the filler leaves ample room for what the
    # journal acknowledged meanwhile (about 2.7 KB a message in SQLite, twice that
    # while the WAL holds it).
    # The first rounds only fill it: while the destination drains a queue that
    # spilled to the store, the lane reading it back used to wait for the store
    # under the lock that the source takes for each message, so a full disk
    # left senders without an answer (about one round in four).
    for attempt in range(4):
        d, port = setup(96)
        with open(f"{d}/var/filler", "wb") as f:
            f.write(b"\0" * (56 << 20))
        engine = run(d)
        check(wait_for(lambda: port_open(port), timeout=15), f"the engine starts on a 96 MB disk:\n{log(d)}")
        fields, acked = load(port, 60000, f"F{attempt}-", d)
        check(fields.get("unacked") == "0",
              f"every message is answered, none waits for nothing (round {attempt + 1}): {fields}\n{log(d)[-3000:]}")
        if attempt < 3:
            engine.kill()  # a stop would wait for the store, which cannot write
            engine.wait(30)
    check(int(fields.get("ok", 0)) > 1000 and int(fields.get("bad", 0)) > 0,
          f"AA while there was room, then AE: {fields}")
    check("new messages refused" in log(d), "the log says new messages are refused")
    check(not send_one(port), "a message sent while the disk is full gets an error at once")
    # 2. Space returns: accepted again without a restart, everything delivered.
    os.remove(f"{d}/var/filler")
    check(wait_for(lambda: send_one(port), timeout=20, step=0.5), "once space returns, messages are accepted again")
    check("can be written again" in log(d) or "accepted" in log(d), "the log says so")
    check(wait_for(lambda: not (acked - receiver.ids()), timeout=120, step=0.5),
          f"every acknowledged message is delivered: {len(acked - receiver.ids())} missing")
    check(wait_for(lambda: counts(d).get("QUEUED", "0") == "0" and counts(d).get("RECEIVED", "0") == "0",
                   timeout=120, step=0.5), f"nothing is left queued: {counts(d)}")
    engine.send_signal(signal.SIGTERM)
    check(engine.wait(30) == 0, "a clean stop afterwards")

    # 3. A disk budget refuses before the disk is full, and lets go once under it.
    d, port = setup(64, ", min_free: 20MB")
    with open(f"{d}/var/filler", "wb") as f:
        f.write(b"\0" * (16 << 20))
    engine = run(d)
    check(wait_for(lambda: port_open(port), timeout=15), "the engine starts with a budget")
    check(wait_for(lambda: "min_free" in log(d), timeout=5), f"the budget is reached (32 MB journal + filler):\n{log(d)}")
    check(not send_one(port), "a message is refused at once while the budget is reached")
    os.remove(f"{d}/var/filler")
    check(wait_for(lambda: send_one(port), timeout=10, step=0.5), "accepted again once within the budget")
    engine.send_signal(signal.SIGTERM)
    engine.wait(15)

    # 4. Little space at start: smaller journal segments; too little: a clear error.
    d, port = setup(12)
    engine = run(d)
    check(wait_for(lambda: port_open(port), timeout=15), f"the engine starts on a 12 MB disk:\n{log(d)}")
    check("trying segments of" in log(d), "with smaller journal segments")
    check(send_one(port), "and accepts a message")
    engine.send_signal(signal.SIGTERM)
    engine.wait(15)
    d, port = setup(1)
    engine = run(d)
    rc = engine.wait(15)
    check(rc == 1, f"on a 1 MB disk the engine does not start (exit {rc})")
    check("MB free beside the store" in log(d), f"and says how much space it needs:\n{log(d)}")
finally:
    stop(procs)
    for m in mounts:
        subprocess.run(["umount", "-l", m])
    if not os.environ.get("KEEP"):
        import shutil
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
check.exit()
