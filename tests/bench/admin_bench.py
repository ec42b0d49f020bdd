"""Shared by the admin API benchmarks (metrics_scrape.py, search_http.py): a
`junction run` on a folder with an admin port, a bearer token for its admin,
percentiles. Not a benchmark itself."""
import base64
import http.client
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration", "lib"))
from checks import wait_for  # noqa: E402

PASSWORD = "bench-password-1"


def get(port, path, headers=None):
    """(status, body) of one GET on a connection of its own."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def start(bin_path, folder, port):
    """`junction run` on folder/junction.yaml (admin password PASSWORD), ready;
    returns the process and a bearer token's Authorization header."""
    env = dict(os.environ, JUNCTION_ADMIN_PASSWORD=PASSWORD)
    engine = subprocess.Popen([bin_path, "run", "--config", f"{folder}/junction.yaml"],
                              stdout=open(f"{folder}/run.log", "w"), stderr=subprocess.STDOUT, env=env)

    def ready():
        try:
            return get(port, "/ready")[0] == 200
        except OSError:
            return False
    if not wait_for(ready, timeout=120):
        engine.terminate()
        raise SystemExit("the engine did not get ready: " + open(f"{folder}/run.log").read()[-2000:])
    basic = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/api/v1/tokens", body=json.dumps({"label": "bench"}),
              headers={**basic, "Content-Type": "application/json"})
    token = json.loads(c.getresponse().read())["token"]
    c.close()
    return engine, {"Authorization": "Bearer " + token}


def stop(engine):
    engine.terminate()
    try:
        engine.wait(30)
    except subprocess.TimeoutExpired:
        engine.kill()


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p * len(v)))]


def finish(engine, conn, folder):
    """The end of a benchmark: its connection closed, the engine stopped, its folder removed."""
    import shutil
    if conn:
        conn.close()
    if engine:
        stop(engine)
    shutil.rmtree(folder, ignore_errors=True)
