"""A destination's outage in the log: its first failure is logged once (not one
line per retry), and its recovery is logged with how long it lasted."""
import os
import subprocess
import sys
import tempfile

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, finish, free_port, port_open, wait_for  # noqa: E402
from mllp_peer import Receiver, retrying_channel  # noqa: E402

check = Checks()
tmp = tempfile.mkdtemp(prefix="junction-outage-log-")
port, peer = free_port(), free_port()
os.makedirs(f"{tmp}/channels")
with open(f"{tmp}/junction.yaml", "w") as f:
    f.write("store: { path: var/junction.db, sync: normal }\n")
with open(f"{tmp}/channels/a.yaml", "w") as f:
    f.write(retrying_channel(port, peer))
LOG = f"{tmp}/junction.log"


def log():
    return open(LOG).read()


engine = subprocess.Popen([BIN, "run"], cwd=tmp, stdout=open(LOG, "w"), stderr=subprocess.STDOUT)
try:
    check(wait_for(lambda: port_open(port), timeout=15), "the engine listens")
    for _ in range(3):
        r = subprocess.run([BIN, "hl7", "send", f"127.0.0.1:{port}", f"{SRC}/samples/hl7/orm_o01_nw.hl7"],
                           capture_output=True, text=True)
        check(r.returncode == 0, "a message is acknowledged while the destination is down")
    check(wait_for(lambda: "destination ris is failing" in log(), timeout=10), "the first failure is logged")
    # Many retries (every 100-200 ms) pass: still one line for the outage.
    wait_for(lambda: False, timeout=3)
    check(log().count("destination ris is failing") == 1, f"one line for the outage, not one per retry:\n{log()}")
    check(log().count("ris") <= 3, f"nothing else about it is logged meanwhile:\n{log()}")
    Receiver(peer)
    check(wait_for(lambda: "destination ris is back after" in log(), timeout=15), f"the recovery is logged:\n{log()}")
    check("failed attempt(s))" in log(), "the recovery says how many attempts failed")
finally:
    finish([engine], check, tmp)
check.exit()
