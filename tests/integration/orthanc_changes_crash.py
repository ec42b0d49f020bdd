"""The orthanc source's position survives Junction killed (SIGKILL) while it
follows a busy change log: after two kills and restarts every change of
Orthanc is one message, none missing, none twice. A server whose credentials
Orthanc refuses is a clear error naming it at start (the channel and the
engine go on), and the source follows it once Orthanc takes them."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

BIN = os.environ["JUNCTION_BIN"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, engine_dir, finish, wait_for  # noqa: E402
from orthanc_peer import Orthanc  # noqa: E402

STUDIES = 25
check = Checks()
procs = []
tmp = engine_dir("junction-orthanc-crash-", {
    # Every change a message (each with the resource read): many messages, and time to be killed among them.
    "changes": """channel: changes
source: { type: orthanc, server: main, from: start, limit: 7, poll_interval: 200ms, expand: instances }
destinations: []
""",
    "locked": """channel: locked
source: { type: orthanc, server: late, changes: [StableStudy], from: start, poll_interval: 200ms }
destinations: []
"""})
orthanc = Orthanc(workdir=os.path.join(tmp, "orthanc")).start()
with open(f"{tmp}/junction.yaml", "a") as f:
    f.write(f"""orthanc:
  main: {{ url: "{orthanc.url}", username: {orthanc.user}, password: {orthanc.password}, timeout: 5s }}
  late: {{ url: "{orthanc.url}", username: late, password: not-yet, timeout: 5s }}
""")
log_path = f"{tmp}/junction.log"
log = lambda: open(log_path).read()  # noqa: E731
db_path = f"{tmp}/var/junction.db"


def start():
    p = subprocess.Popen([BIN, "run"], cwd=tmp, stdout=open(log_path, "a"), stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def sources(channel):
    """The source of each stored message of `channel` ("orthanc main change N"), read beside the engine."""
    if not os.path.exists(db_path):
        return []
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            return [r[0] for r in db.execute("SELECT source FROM messages WHERE channel = ?", (channel,))]
        finally:
            db.close()
    except sqlite3.Error:
        return []


try:
    # Credentials Orthanc refuses: a clear error naming the server, once.
    engine = start()
    wanted = f"[locked] error: orthanc server 'late' ({orthanc.url}): GET /system: 401 Unauthorized (wrong username or password)"
    check(wait_for(lambda: wanted in log(), 15), f"the refused credentials are an error naming the server:\n{log()}")
    check(wait_for(lambda: "[changes] info: following the changes" in log(), 15), "the other channel runs")

    # Studies keep coming while Junction is killed, twice, following their changes.
    def create():
        for i in range(STUDIES):
            orthanc.create_study(f"P{i:03d}")
            time.sleep(0.1)

    creator = threading.Thread(target=create)
    creator.start()
    for kill in range(2):
        n = len(sources("changes"))
        check(wait_for(lambda: len(sources("changes")) > n + 5, 60), f"messages come before kill {kill + 1}")
        # A run killed before its locked source's first attempt has logged nothing yet.
        check(wait_for(lambda: log().count(wanted) == kill + 1, 15), f"run {kill + 1} logged the refused credentials")
        engine.send_signal(signal.SIGKILL)
        engine.wait()
        procs.remove(engine)
        engine = start()
    creator.join()
    check(wait_for(lambda: log().count(wanted) == 3, 15), "the refused credentials are logged once a run")

    # Once Orthanc takes the credentials, the locked channel follows it too. (Its
    # restart waits for every study to be stable: Orthanc forgets the others.)
    stable = lambda: sum(c["ChangeType"] == "StableStudy"  # noqa: E731
                         for c in orthanc.changes(0, 10000)["Changes"])
    check(wait_for(lambda: stable() == STUDIES, 30), f"every study is stable in Orthanc: {stable()}")
    orthanc.stop()
    orthanc.config["RegisteredUsers"]["late"] = "not-yet"
    orthanc.start()
    check(wait_for(lambda: "[locked] info: orthanc server 'late' answers again" in log(), 60),
          f"the locked channel follows the server once it takes its credentials:\n{log()[-2000:]}")

    def caught_up():
        last = orthanc.last_change()
        return last if len(set(sources("changes"))) >= last and len(sources("locked")) >= STUDIES else None

    check(wait_for(caught_up, 90), f"every change is read: {len(sources('changes'))} of {orthanc.last_change()}")
    last = orthanc.last_change()
    procs.remove(engine)
    engine.terminate()
    check(engine.wait(20) == 0, "the engine stops cleanly")
    got = sources("changes")
    seqs = sorted(int(s.rsplit(" ", 1)[1]) for s in got)
    check(seqs == list(range(1, last + 1)), f"one message per change 1..{last}: {len(seqs)} messages, "
          f"missing {sorted(set(range(1, last + 1)) - set(seqs))}, twice {sorted(s for s in set(seqs) if seqs.count(s) > 1)}")
    locked = sources("locked")
    check(len(locked) == STUDIES and len(set(locked)) == STUDIES, f"a StableStudy message per study: {len(locked)}")
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    mark = json.loads(dict(db.execute("SELECT key, value FROM source_marks")).get("changes/orthanc", "{}"))
    check(mark == {"server": "main", "seq": last}, f"the stored position is the last change: {mark}")
finally:
    orthanc.stop()
    finish(procs, check, tmp)
check.exit()
