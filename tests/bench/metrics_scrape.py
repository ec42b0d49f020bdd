"""Benchmark: the time of a /metrics scrape of an engine with 100 channels
(each with a destination, each triggered once so that every counter and
latency histogram has figures in the store), against the same server
answering GET /health (no work: what the HTTP round trip costs) and
GET /api/v1/me (the same bearer-token check as /metrics, no figures); GET
/api/v1/stats (the same figures with their 1 min/1 h/24 h windows, as JSON) is
timed beside them.

One keep-alive connection, requests one after the other: warm-up, then
REQUESTS of each kind, interleaved (metrics, health, me, metrics, ...) so
that a burst of other work on the machine falls on all of them. Prints p50,
p90 and p99 in milliseconds and the size of the answer.

Usage: metrics_scrape.py JUNCTION_BIN [CHANNELS] [REQUESTS]   (100, 500)"""
import http.client
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration", "lib"))
from admin_bench import finish, get, pct, start  # noqa: E402
from checks import free_port, wait_for  # noqa: E402

BIN = sys.argv[1]
CHANNELS = int(sys.argv[2]) if len(sys.argv) > 2 else 100
REQUESTS = int(sys.argv[3]) if len(sys.argv) > 3 else 500

tmp = tempfile.mkdtemp(prefix="junction-metrics-bench-")
port = free_port()
os.makedirs(f"{tmp}/channels")
with open(f"{tmp}/junction.yaml", "w") as f:
    f.write(f"store: {{ path: var/bench.db, sync: normal }}\nadmin: {{ port: {port} }}\n")
for i in range(CHANNELS):
    with open(f"{tmp}/channels/c{i:03}.yaml", "w") as f:
        f.write(f"channel: c{i:03}\n"
                "source: { type: schedule, interval: 24h, run_at_start: false }\n"
                "destinations:\n"
                f"  - {{ name: out, type: file, directory: out/c{i:03} }}\n")

engine = None
conn = None
try:
    engine, bearer = start(BIN, tmp, port)
    # One message per channel: figures in every counter and histogram.
    for i in range(CHANNELS):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", f"/api/v1/channels/c{i:03}/trigger", headers=bearer)
        c.getresponse().read()
        c.close()

    def sent():
        status, body = get(port, "/api/v1/stats", bearer)
        return status == 200 and all(ch["counters"]["sent"] == 1 for ch in json.loads(body)["channels"])
    if not wait_for(sent, timeout=60):
        print("not every channel delivered its message")
    time.sleep(6)  # one write of the statistics recorder: totals come from the store

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = {"/metrics": [], "/health": [], "/api/v1/me": [], "/api/v1/stats": []}
    size = 0
    for n in range(50 + REQUESTS):
        for path in times:
            t0 = time.perf_counter()
            conn.request("GET", path, headers=bearer)
            r = conn.getresponse()
            body = r.read()
            dt = (time.perf_counter() - t0) * 1000
            if r.status != 200:
                raise SystemExit(f"{path}: {r.status}")
            if path == "/metrics":
                size = len(body)
            if n >= 50:
                times[path].append(dt)

    res = {}
    for path, v in times.items():
        res[path] = (pct(v, 0.5), pct(v, 0.9), pct(v, 0.99))
        print(f"GET {path:12} p50 {res[path][0]:.2f} ms  p90 {res[path][1]:.2f} ms  p99 {res[path][2]:.2f} ms")
    print(f"/metrics answer: {size} bytes for {CHANNELS} channels with a destination each")
    m, h, me = res["/metrics"][0], res["/health"][0], res["/api/v1/me"][0]
    print(f"RESULT metrics_scrape_{CHANNELS}ch_p50_ms={m:.2f} metrics_scrape_{CHANNELS}ch_p99_ms={res['/metrics'][2]:.2f}"
          f" health_p50_ms={h:.2f} me_p50_ms={me:.2f} ratio_metrics_health={m / h:.2f} ratio_metrics_me={m / me:.2f}"
          f" stats_{CHANNELS}ch_p50_ms={res['/api/v1/stats'][0]:.2f}")
finally:
    finish(engine, conn, tmp)
