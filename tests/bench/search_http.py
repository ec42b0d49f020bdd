"""Benchmark: message searches over HTTP (GET /api/v1/messages of a running
`junction run`) on the store bench_message_search filled, against GET /health
of the same server (the HTTP round trip alone): what an operator's search costs
end to end, beside the store's own figures.

The store is copied aside first (the engine upgrades nothing in it, but a
running engine writes to its database). One keep-alive connection, a bearer
token, requests one after the other, interleaved by kind; keys picked at random
from the store. Prints p50 and p99 in milliseconds.

Usage: search_http.py JUNCTION_BIN STORE_DB [REQUESTS]   (200)"""
import http.client
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration", "lib"))
from admin_bench import finish, pct, start  # noqa: E402
from checks import free_port  # noqa: E402

BIN, DB = sys.argv[1], sys.argv[2]
REQUESTS = int(sys.argv[3]) if len(sys.argv) > 3 else 200

tmp = tempfile.mkdtemp(prefix="junction-search-http-")
os.makedirs(f"{tmp}/channels")
os.makedirs(f"{tmp}/var")
for suffix in ("", "-wal", "-text", "-text-wal"):
    if os.path.exists(DB + suffix):
        shutil.copy(DB + suffix, f"{tmp}/var/search.db{suffix}")
with sqlite3.connect(f"{tmp}/var/search.db") as db:
    top = db.execute("SELECT max(id) FROM messages").fetchone()[0]
    rng = random.Random(7)
    keys = []
    while len(keys) < REQUESTS:
        row = db.execute("SELECT control_id, patient_id, accession FROM messages WHERE id = ?",
                         (rng.randint(1, top),)).fetchone()
        if row and all(row):
            keys.append(row)
port = free_port()
with open(f"{tmp}/junction.yaml", "w") as f:
    f.write(f"store: {{ path: var/search.db, sync: normal }}\nadmin: {{ port: {port} }}\n")

engine = None
conn = None
try:
    engine, bearer = start(BIN, tmp, port)
    q = urllib.parse.quote
    kinds = {
        "health": lambda k: "/health",
        "control_id": lambda k: "/api/v1/messages?control_id=" + q(k[0]),
        "patient_id": lambda k: "/api/v1/messages?patient_id=" + q(k[1]),
        "accession": lambda k: "/api/v1/messages?accession=" + q(k[2]),
        "destination_error": lambda k: "/api/v1/messages?destination_status=ERROR&limit=100",
        "destination_queued": lambda k: "/api/v1/messages?destination_status=QUEUED&limit=100",
    }
    times = {name: [] for name in kinds}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for n in range(20 + REQUESTS):
        for name, path in kinds.items():
            t0 = time.perf_counter()
            conn.request("GET", path(keys[n % len(keys)]), headers=bearer)
            r = conn.getresponse()
            body = r.read()
            dt = (time.perf_counter() - t0) * 1000
            if r.status != 200:
                raise SystemExit(f"{name}: {r.status} {body[:200]!r}")
            if n >= 20:
                times[name].append(dt)
    for name, v in times.items():
        print(f"GET {name:20} p50 {pct(v, 0.5):.3f} ms  p99 {pct(v, 0.99):.3f} ms")
    fields = " ".join(f"http_{name}_p50_ms={pct(v, 0.5):.3f} http_{name}_p99_ms={pct(v, 0.99):.3f}"
                      for name, v in times.items())
    print(f"RESULT {fields}")
finally:
    finish(engine, conn, tmp)
