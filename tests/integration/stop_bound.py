"""A stop finishes within its bound whatever the engine waits for. Another
program holds the database locked (BEGIN EXCLUSIVE), so the store's writer
cannot apply an acknowledged message; SIGTERM then ends the engine within the
bound (10 s), saying what it waited for, and a second SIGTERM ends it at once.
The acknowledged message is not lost: the next start stores it."""
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, engine_dir, finish, free_port, port_open, wait_for  # noqa: E402

check = Checks()
port = free_port()
tmp = engine_dir("junction-stop-bound-",
                 {"a": f"channel: a\nsource: {{ type: mllp, port: {port}, host: 127.0.0.1 }}\ndestinations: []\n"})
SAMPLE = os.path.join(SRC, "samples", "hl7", "orm_o01_nw.hl7")
LOG = f"{tmp}/junction.log"


def start():
    return subprocess.Popen([BIN, "run"], cwd=tmp, stdout=open(LOG, "a"), stderr=subprocess.STDOUT)


def locked_database(release):
    db = sqlite3.connect(f"{tmp}/var/junction.db", isolation_level=None, timeout=10)
    db.execute("BEGIN EXCLUSIVE")
    release.wait(60)
    db.execute("ROLLBACK")
    db.close()


def send():
    return subprocess.run([BIN, "hl7", "send", f"127.0.0.1:{port}", SAMPLE], capture_output=True, text=True)


def stop_with_lock(extra_signal):
    """Starts the engine, locks its database, sends a message, sends SIGTERM
    (and, with extra_signal, a second one a second later); returns
    (seconds to exit, exit code, the engine's log of this run)."""
    open(LOG, "w").close()
    engine = start()
    procs.append(engine)
    check(wait_for(lambda: port_open(port), timeout=15), "the engine listens")
    release = threading.Event()
    holder = threading.Thread(target=locked_database, args=(release,))
    holder.start()
    time.sleep(0.5)
    r = send()
    check(r.returncode == 0, f"the message is acknowledged although the database is locked: {r.stdout}{r.stderr}")
    time.sleep(0.5)
    began = time.time()
    engine.send_signal(signal.SIGTERM)
    if extra_signal:
        time.sleep(1.5)
        engine.send_signal(signal.SIGTERM)
    try:
        rc = engine.wait(30)
    except subprocess.TimeoutExpired:
        rc = None
        engine.kill()
        engine.wait()
    took = time.time() - began
    release.set()
    holder.join()
    return took, rc, open(LOG).read()


procs = []
try:
    took, rc, log = stop_with_lock(extra_signal=False)
    check(rc is not None and took < 14, f"the stop ends within its bound: {took:.1f} s, exit {rc}")
    check(rc == 1, f"an unclean stop exits 1, got {rc}")
    check("still stopping after 1 s, waiting for channel a" in log or "still stopping after 1 s, waiting for the store" in log,
          "after a second it says what it waits for")
    check("exiting without a clean stop after the stop's bound of 10 s" in log, "it says why it exits")

    took, rc, log = stop_with_lock(extra_signal=True)
    check(rc == 1 and took < 5, f"a second SIGTERM ends it at once: {took:.1f} s, exit {rc}")
    check("after a second signal" in log, "it says so")

    # Nothing acknowledged was lost: the next start applies both messages.
    open(LOG, "w").close()
    engine = start()
    procs.append(engine)
    check(wait_for(lambda: port_open(port), timeout=15), "the engine starts again")
    r = subprocess.run([BIN, "messages", "--config", f"{tmp}/junction.yaml", "--channel", "a", "--counts"],
                       capture_output=True, text=True)
    total = sum(int(line.split()[1]) for line in r.stdout.splitlines() if len(line.split()) == 2)
    check(total == 2, f"both acknowledged messages are stored: {r.stdout}{r.stderr}")
    engine.send_signal(signal.SIGTERM)
    check(engine.wait(15) == 0, "a stop with nothing in the way is clean (exit 0)")
finally:
    finish(procs, check, tmp)
check.exit()
