"""C-STORE answered means kept, even through a SIGKILL: storescu sends 300
instances to Junction's `dicom` source (default `respond_after: file`, the
message made after the response) on a channel whose transformer is slow, so
answered instances pile up waiting to become messages; Junction is killed with
SIGKILL then, restarted, and every instance storescu was answered for is a
message in the store, its file in place, the ready folder empty."""
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile

import pydicom
from pydicom.uid import generate_uid

BIN = os.environ["JUNCTION_BIN"]
SAMPLE = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm"
COUNT = 300
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, finish, free_port, wait_for  # noqa: E402

check = Checks()
tmp = tempfile.mkdtemp(prefix="junction-dicom-crash-")
port = free_port()
os.makedirs(f"{tmp}/channels")
os.makedirs(f"{tmp}/in")
with open(f"{tmp}/junction.yaml", "w") as f:
    f.write("store: { path: var/junction.db, sync: normal }\nadmin: { port: 0 }\n")
with open(f"{tmp}/channels/images.yaml", "w") as f:
    f.write(f"channel: images\nsource: {{ type: dicom, port: {port}, ae_title: JUNCTION }}\n"
            "script: slow.lua\ntransform: slow\ndestinations: []\n")
with open(f"{tmp}/slow.lua", "w") as f:  # a few milliseconds of work per message
    f.write("function slow(msg)\n  local x = 0\n  for i = 1, 300000 do x = x + i end\n  msg.work = x\nend\n")

ds = pydicom.dcmread(SAMPLE)
uids = set()
for i in range(COUNT):
    uid = generate_uid()
    uids.add(uid)
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.save_as(f"{tmp}/in/{i:04d}.dcm", write_like_original=True)


def start():
    log = open(f"{tmp}/junction.log", "a")
    p = subprocess.Popen([BIN, "run"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    ok = wait_for(lambda: subprocess.run(["echoscu", "-aec", "JUNCTION", "127.0.0.1", str(port)],
                                         capture_output=True).returncode == 0, 15)
    return p, ok


def messages():
    try:
        c = sqlite3.connect(f"file:{tmp}/var/junction.db?mode=ro", uri=True, timeout=2)
        rows = c.execute("SELECT id FROM messages WHERE channel = 'images'").fetchall()
        c.close()
        return len(rows)
    except sqlite3.Error:
        return 0


procs = []
try:
    p, ok = start()
    procs.append(p)
    check(ok, "Junction answers C-ECHO")
    r = subprocess.run(["storescu", "-aet", "MODALITY", "-aec", "JUNCTION", "+sd", "127.0.0.1", str(port), f"{tmp}/in"],
                       capture_output=True, text=True, env=dict(os.environ, TCP_NODELAY="1"))
    check(r.returncode == 0, f"storescu got a success for every instance ({r.stderr.strip()[-300:]})")
    p.send_signal(signal.SIGKILL)  # no chance to finish the backlog or flush anything
    p.wait()
    ready = f"{tmp}/var/dicom/.incoming/{port}/ready"
    left = len([n for n in os.listdir(ready) if n.endswith(".dcm")]) if os.path.isdir(ready) else 0
    print(f"at the kill: {left} answered instance(s) not yet messages")
    check(left > 0, "some answered instances were not yet messages at the kill")

    p, ok = start()
    procs = [p]
    check(ok, "Junction answers again after the restart")
    check(wait_for(lambda: messages() >= COUNT, 60), f"{COUNT} messages after the restart (got {messages()})")
    check(wait_for(lambda: not [n for n in os.listdir(ready) if n.endswith(".dcm")], 10), "the ready folder is empty")
    stored = set()
    for root, _, files in os.walk(f"{tmp}/var/dicom"):
        if ".incoming" in root or ".failed" in root:
            continue
        for n in files:
            stored.add(n[:-4])
    check(stored == uids, f"every instance is filed under its UIDs ({len(stored & uids)} of {COUNT})")
finally:
    finish(procs, check, tmp)
check.exit()
