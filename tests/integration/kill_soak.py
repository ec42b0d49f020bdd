"""Kill soak: nothing acknowledged is ever lost. Senders keep sending to an
engine's MLLP channels (storage: development, an MLLP destination with retries)
while the engine is SIGKILLed at random moments and started again at once, with
no wait in between: half the time the new process starts just after the
kill (it overlaps the dying one), half the time up to 0.3 s before it (two
engines on one store for a moment, as a restart loop racing a stop makes). After every cycle,
each control id a sender got an AA for must be in the store; at the end every
one must have reached the receiver and nothing may be left unfinished.

Short by default (ctest runs it); scripts/soak.sh runs it long.
  SOAK_CYCLES    kill/restart cycles (default 10)
  SOAK_SYNC      full | normal | mixed (each start picks one) (default mixed)
  SOAK_CHANNELS  MLLP channels on the engine, each with its own sender (default 2)
  SOAK_THREADS   event loops per MLLP source (default 2)
  SOAK_HISTORY   messages stored before the first kill (default 0)
  SOAK_PER_CYCLE messages each sender sends per cycle (default 1500)
  SOAK_SEED      random seed (default: time)
"""
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
LOAD = os.environ["MLLPLOAD"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, finish, free_port, port_open, wait_for  # noqa: E402
from mllp_peer import Receiver  # noqa: E402

CYCLES = int(os.environ.get("SOAK_CYCLES", "10"))
SYNC = os.environ.get("SOAK_SYNC", "mixed")
CHANNELS = int(os.environ.get("SOAK_CHANNELS", "2"))
THREADS = int(os.environ.get("SOAK_THREADS", "2"))
HISTORY = int(os.environ.get("SOAK_HISTORY", "0"))
PER_CYCLE = int(os.environ.get("SOAK_PER_CYCLE", "1500"))
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
SAMPLE = os.path.join(SRC, "samples", "hl7", "orm_o01_nw.hl7")
rng = random.Random(SEED)
print(f"kill soak: {CYCLES} cycles, sync {SYNC}, {CHANNELS} channel(s) x {THREADS} loop(s), "
      f"history {HISTORY}, {PER_CYCLE} per sender per cycle, seed {SEED}", flush=True)

check = Checks()
tmp = tempfile.mkdtemp(prefix="junction-kill-soak-")
DB = f"{tmp}/var/junction.db"


recv_port = free_port()
receiver = Receiver(recv_port)

ports = [free_port() for _ in range(CHANNELS)]
os.makedirs(f"{tmp}/channels")
for i, port in enumerate(ports):
    with open(f"{tmp}/channels/in{i}.yaml", "w") as f:
        f.write(f"""channel: in{i}
source: {{ type: mllp, port: {port}, host: 127.0.0.1, threads: {THREADS} }}
storage: development
destinations:
  - name: out
    type: mllp
    host: 127.0.0.1
    port: {recv_port}
    connect_timeout: 1s
    response_timeout: 5s
    retry: {{ attempts: 1000000, backoff: 50ms, max_backoff: 1s }}
""")
log = open(f"{tmp}/junction.log", "a")


def start_engine():
    mode = SYNC if SYNC != "mixed" else rng.choice(["full", "normal"])
    with open(f"{tmp}/junction.yaml", "w") as f:
        f.write(f"store: {{ path: var/junction.db, sync: {mode} }}\n")
    log.write(f"=== start, sync {mode}\n")
    log.flush()
    return subprocess.Popen([BIN, "run"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT)


def senders(prefix, count, reconnect=30):
    procs = []
    for i, port in enumerate(ports):
        procs.append(subprocess.Popen(
            [LOAD, "127.0.0.1", str(port), "--count", str(count), "--conns", "2", "--msg", SAMPLE,
             "--prefix", f"{prefix}c{i}-", "--acked", f"{tmp}/acked-{prefix}-{i}.txt",
             "--reconnect", str(reconnect), "--timeout-ms", "20000"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return procs


def read_acked(prefix):
    ids = set()
    for i in range(CHANNELS):
        path = f"{tmp}/acked-{prefix}-{i}.txt"
        if os.path.exists(path):
            ids.update(line.strip() for line in open(path) if line.strip())
    return ids


def stored_ids():
    db = sqlite3.connect(f"file:{DB}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0] for row in db.execute("SELECT control_id FROM messages")}
    finally:
        db.close()


def query(sql):
    db = sqlite3.connect(f"file:{DB}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()


def listening():
    return all(port_open(p) for p in ports)


engine = start_engine()
procs = [engine]
acked = set()
lost = set()
started = time.time()
try:
    check(wait_for(listening, timeout=20), "the engine listens")
    if HISTORY:
        for p in senders("h", HISTORY // CHANNELS, reconnect=0):
            p.wait()
        acked |= read_acked("h")
        check(len(acked) >= HISTORY // CHANNELS * CHANNELS, f"history: {len(acked)} acknowledged")

    for cycle in range(CYCLES):
        prefix = f"k{cycle}"
        load = senders(prefix, PER_CYCLE)
        time.sleep(rng.uniform(0.05, 1.2))
        old = engine
        if rng.random() < 0.5:
            old.send_signal(signal.SIGKILL)
            engine = start_engine()  # at once: overlaps the dying process
        else:
            engine = start_engine()  # before the kill, as a restart loop racing a slow stop would
            time.sleep(rng.uniform(0, 0.3))
            old.send_signal(signal.SIGKILL)
        procs.append(engine)
        old.wait(10)
        for p in load:
            p.wait(120)
        acked |= read_acked(prefix)
        if not wait_for(lambda: not (acked - stored_ids()), timeout=15):
            lost = acked - stored_ids()
            check(False, f"cycle {cycle}: {len(lost)} acknowledged messages are not in the store, "
                         f"e.g. {sorted(lost)[:5]}")
            break
        if engine.poll() is not None:
            check(False, f"cycle {cycle}: the restarted engine exited with {engine.returncode}")
            break
        check(True, f"cycle {cycle}")
    print(f"{cycle + 1} cycles, {len(acked)} acknowledged messages, all in the store"
          if not lost else f"stopped after cycle {cycle}", flush=True)

    # Drain: every acknowledged message reaches the receiver; nothing is left unfinished.
    delivered = wait_for(lambda: not (acked - receiver.ids()), timeout=120, step=0.5)
    missing = acked - receiver.ids()
    check(delivered, f"{len(missing)} acknowledged messages never reached the receiver, e.g. {sorted(missing)[:5]}")
    unfinished = "SELECT count(*) FROM deliveries WHERE status != 'Sent'"
    check(wait_for(lambda: query(unfinished) == 0, timeout=60), f"{query(unfinished)} deliveries left unfinished")
    check(query("SELECT count(*) FROM messages WHERE status = 'Received'") == 0, "no message left unprocessed")
    print(f"delivered {len(receiver.ids())} distinct ({receiver.duplicates()} duplicates); "
          f"{time.time() - started:.0f} s", flush=True)
finally:
    finish(procs, check, tmp)
check.exit()
