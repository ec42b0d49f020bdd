"""Benchmark: an `orthanc` source following a real Orthanc's /changes, against
Orthanc's own Lua callback on the same Orthanc in the same run.

Both report each stored instance to one recording HTTP server: Orthanc's
OnStoredInstance Lua callback with HttpPost, Junction with a channel whose
`orthanc` source follows NewInstance changes (poll_interval 100ms) and whose
`http` destination posts the change's instance ID. Instances (CT_small with
new UIDs) are uploaded one after the other with POST /instances.

- latency: from the start of an instance's upload to its report arriving, p50
  and p99, Lua and Junction;
- catch-up: a second channel started on the filled Orthanc with `from: start`
  reads every NewInstance change and reports it: changes per second, against
  the rate the Lua callback reported them while they were being stored.

Usage: orthanc_changes.py JUNCTION_BIN [COUNT]   (COUNT default 10000)"""
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pydicom
from pydicom.uid import generate_uid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration", "lib"))
from checks import free_port, wait_for  # noqa: E402
from orthanc_peer import Orthanc  # noqa: E402

BIN = sys.argv[1]
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
SAMPLE = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm"

arrivals = {"lua": {}, "junction": {}, "catchup": {}}
lock = threading.Lock()


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        now = time.monotonic()
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        kind, _, ident = self.path.strip("/").partition("/")
        ident = ident or body.decode()
        with lock:
            arrivals.setdefault(kind, {}).setdefault(ident, now)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


rec_port = free_port()
recorder = ThreadingHTTPServer(("127.0.0.1", rec_port), Recorder)
threading.Thread(target=recorder.serve_forever, daemon=True).start()

tmp = tempfile.mkdtemp(prefix="junction-bench-orthanc-")
lua = os.path.join(tmp, "report.lua")
with open(lua, "w") as f:
    f.write(f"function OnStoredInstance(instanceId, tags, metadata, origin)\n"
            f"  HttpPost('http://127.0.0.1:{rec_port}/lua/' .. instanceId, '')\nend\n")
orthanc = Orthanc(workdir=os.path.join(tmp, "orthanc"), dicomweb=False)
orthanc.config["LuaScripts"] = [lua]
orthanc.config["StorageCompression"] = False
orthanc.start()
procs = []


def channel(name, start):
    return f"""channel: {name}
storage: production
source: {{ type: orthanc, server: main, changes: [NewInstance], poll_interval: 100ms, limit: 1000, from: {start} }}
destinations:
  - {{ name: report, type: http, url: "http://127.0.0.1:{rec_port}/{name}/${{/change/ID}}", body: none,
      threads: 4 }}
"""


def engine(folder, name, start):
    os.makedirs(f"{folder}/channels")
    with open(f"{folder}/junction.yaml", "w") as f:
        f.write(f"""store: {{ path: var/junction.db, sync: normal }}
admin: {{ port: 0 }}
orthanc:
  main: {{ url: "{orthanc.url}", username: {orthanc.user}, password: {orthanc.password} }}
""")
    with open(f"{folder}/channels/{name}.yaml", "w") as f:
        f.write(channel(name, start))
    p = subprocess.Popen([BIN, "run"], cwd=folder, stdout=open(f"{folder}/run.log", "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    return p


try:
    live = engine(os.path.join(tmp, "live"), "junction", "now")
    time.sleep(2)  # the source has read Orthanc's last change and polls
    base = pydicom.dcmread(SAMPLE)
    started = {}
    t0 = time.monotonic()
    for i in range(COUNT):
        base.SOPInstanceUID = generate_uid()
        if i % 100 == 0:
            base.StudyInstanceUID, base.SeriesInstanceUID = generate_uid(), generate_uid()
        buf = io.BytesIO()
        base.save_as(buf)
        began = time.monotonic()
        answer = orthanc.post("/instances", buf.getvalue(), content_type="application/dicom")
        started[answer["ID"]] = began
    upload_s = time.monotonic() - t0
    wait_for(lambda: len(arrivals["lua"]) >= COUNT and len(arrivals["junction"]) >= COUNT, 300, 0.2)

    def latencies(kind):
        return [(arrivals[kind][i] - s) * 1000 for i, s in started.items() if i in arrivals[kind]]

    lua_lat, j_lat = latencies("lua"), latencies("junction")
    lua_times = sorted(arrivals["lua"].values())
    lua_rate = (len(lua_times) - 1) / (lua_times[-1] - lua_times[0]) if len(lua_times) > 1 else float("nan")
    print(f"uploaded {COUNT} instances in {upload_s:.1f} s ({COUNT / upload_s:.0f}/s)")
    print(f"latency upload->report  Lua OnStoredInstance: p50 {percentile(lua_lat, 50):.1f} ms p99 "
          f"{percentile(lua_lat, 99):.1f} ms ({len(lua_lat)} reports)")
    print(f"latency upload->report  Junction orthanc source: p50 {percentile(j_lat, 50):.1f} ms p99 "
          f"{percentile(j_lat, 99):.1f} ms ({len(j_lat)} reports)")

    # Catch-up: a new channel reads every change from the start.
    t1 = time.monotonic()
    engine(os.path.join(tmp, "catchup"), "catchup", "start")
    wait_for(lambda: len(arrivals["catchup"]) >= COUNT, 600, 0.1)
    done = max(arrivals["catchup"].values()) if arrivals["catchup"] else float("nan")
    catchup_rate = len(arrivals["catchup"]) / (done - t1)
    print(f"catch-up from: start: {len(arrivals['catchup'])} changes in {done - t1:.1f} s "
          f"({catchup_rate:.0f}/s, start-up included); Lua callbacks during ingest: {lua_rate:.0f}/s")
    print(f"RESULT orthanc_lat_p50_ms={percentile(j_lat, 50):.1f} orthanc_lat_p99_ms={percentile(j_lat, 99):.1f} "
          f"lua_lat_p50_ms={percentile(lua_lat, 50):.1f} lua_lat_p99_ms={percentile(lua_lat, 99):.1f} "
          f"catchup_changes_s={catchup_rate:.0f} lua_ingest_s={lua_rate:.0f} "
          f"ratio_catchup_lua={catchup_rate / lua_rate:.2f}")
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
    orthanc.stop()
    recorder.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
