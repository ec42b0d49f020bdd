"""A message's log and the kept statistics, with the real binary: a filtered
message shows its filter's reason, a script's log line shows on its message,
a destination down and then up shows the failed and the successful attempt
in the delivery's history, and the counters (GET /api/v1/stats "total",
/metrics) and a console session hold across a restart instead of starting
from zero."""
import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

BIN = os.environ["JUNCTION_BIN"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, engine_dir, finish, free_port, start_engine, wait_for  # noqa: E402
from mllp_peer import Receiver  # noqa: E402

check = Checks()
admin_port, in_port, peer_port = free_port(), free_port(), free_port()
tmp = engine_dir("junction-msglog-", {
    "orders": "channel: orders\n"
              f"source: {{ type: mllp, port: {in_port} }}\n"
              "script: orders.lua\n"
              "filter: wanted\n"
              "transform: note\n"
              "destinations:\n"
              "  - name: emr\n"
              "    type: mllp\n"
              "    host: 127.0.0.1\n"
              f"    port: {peer_port}\n"
              "    connect_timeout: 200ms\n"
              "    retry: { attempts: 1000, backoff: 200ms, max_backoff: 500ms }\n",
}, store=f"store: {{ path: var/junction.db, sync: normal }}\nadmin: {{ port: {admin_port} }}")
with open(f"{tmp}/orders.lua", "w") as f:
    f.write('function wanted(msg)\n'
            '  if msg:get("MSH-10") == "SKIP1" then return false, "a test order is not wanted" end\n'
            'end\n'
            'function note(msg)\n'
            '  log.info("order for", msg:get("PID-3.1"))\n'
            'end\n')
ADMIN = ("admin", "admin-secret-1")


def api(path):
    req = urllib.request.Request(f"http://127.0.0.1:{admin_port}{path}")
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if r.headers.get("Content-Type", "").startswith("application/json") else text)
    except urllib.error.HTTPError as e:
        return e.code, None
    except OSError:
        return 0, None


def start():
    p = start_engine(tmp, ADMIN[1])
    check(wait_for(lambda: api("/ready")[0] == 200, timeout=30), "the engine is ready")
    return p


def send(control_id):
    path = f"{tmp}/{control_id}.hl7"
    with open(path, "w") as f:
        f.write(f"MSH|^~\\&|RIS|HOSP|JUNCTION|HOSP|20261207101500||ORM^O01|{control_id}|P|2.5.1\r"
                "PID|1||PAT42^^^HOSP||DOE^JANE\rORC|NW|ORD1\rOBR|1|ORD1||CT^CT HEAD\r")
    r = subprocess.run([BIN, "hl7", "send", f"127.0.0.1:{in_port}", path], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"{control_id} acknowledged: {r.stdout}{r.stderr}")


def detail(control_id):
    status, found = api(f"/api/v1/messages?control_id={control_id}")
    if status != 200 or not found["messages"]:
        return None
    return api(f"/api/v1/messages/{found['messages'][0]['id']}")[1]


def orders_stats():
    status, body = api("/api/v1/stats")
    if status != 200:
        return None
    return next((c for c in body["channels"] if c["name"] == "orders"), None)


def metric(name):
    status, text = api("/metrics")
    for line in (text or "").splitlines() if status == 200 else []:
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


procs = []
try:
    engine = start()
    procs.append(engine)
    send("SKIP1")
    send("LOG1")

    wait_for(lambda: detail("SKIP1") is not None, timeout=10)
    m = detail("SKIP1")
    check(m and m["status"] == "FILTERED", f"SKIP1 is filtered: {m}")
    check(m and any(e["stage"] == "filter" and e["text"] == "filtered: a test order is not wanted" for e in m["log"]),
          f"a filtered message shows its reason: {m and m['log']}")

    r = subprocess.run([BIN, "messages", "--show", str(m["id"]), "--config", f"{tmp}/junction.yaml"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "-- log" in r.stdout and "filtered: a test order is not wanted" in r.stdout,
          f"junction messages --show prints the log: {r.stdout}{r.stderr}")

    # LOG1 waits for its destination, which is down: its first attempt failed.
    check(wait_for(lambda: (orders_stats() or {}).get("destinations", [{}])[0].get("counters", {}).get("retried", 0) >= 1,
                   timeout=15), "the down destination is retried")
    m = detail("LOG1")
    check(m and any(e["stage"] == "transform" and "order for PAT42" in e["text"] and e["level"] == "info"
                    for e in m["log"]), f"a script's log line shows on its message: {m and m['log']}")
    peer = Receiver(peer_port)
    check(wait_for(lambda: "LOG1" in peer.ids(), timeout=20), "the destination gets LOG1 once it is up")
    check(wait_for(lambda: (detail("LOG1") or {}).get("status") == "SENT", timeout=10), "LOG1 is SENT")
    history = detail("LOG1")["deliveries"][0]["history"]
    r = subprocess.run([BIN, "messages", "--show", str(detail("LOG1")["id"]), "--config", f"{tmp}/junction.yaml"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "  QUEUED  " in r.stdout and "  SENT" in r.stdout,
          f"junction messages --show prints each attempt: {r.stdout}{r.stderr}")
    check(len(history) >= 2 and history[0]["status"] == "QUEUED" and "refused" in history[0]["error"]
          and history[-1]["status"] == "SENT", f"the history shows the failed and the successful attempt: {history}")

    before = orders_stats()
    check(before and before["total"]["received"] == 2 and before["windows"]["1h"]["received"] == 2,
          f"totals and windows count both messages: {before}")
    status, series = api("/api/v1/stats/series?channel=orders&minutes=10")
    check(status == 200 and len(series["minutes"]) == 10 and sum(x["received"] for x in series["minutes"]) == 2,
          f"the series counts both: {series}")

    # A console login made before the restart.
    login = urllib.request.Request(f"http://127.0.0.1:{admin_port}/api/v1/session", method="POST",
                                   data=json.dumps({"user": ADMIN[0], "password": ADMIN[1]}).encode(),
                                   headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(login, timeout=30) as r:
        cookie = r.headers["Set-Cookie"].split(";")[0]

    # A restart: the live counters start again, the kept ones hold.
    engine.terminate()
    check(engine.wait(30) == 0, "the engine stops cleanly")
    procs.remove(engine)
    engine = start()
    procs.append(engine)
    after = orders_stats()
    check(after and after["counters"]["received"] == 0, f"the live counters start from zero: {after}")
    me = urllib.request.Request(f"http://127.0.0.1:{admin_port}/api/v1/me", headers={"Cookie": cookie})
    with urllib.request.urlopen(me, timeout=30) as r:
        check(r.status == 200 and json.loads(r.read())["user"] == ADMIN[0], "the console's session outlives the restart")
    check(after and after["total"]["received"] == 2 and after["total"]["filtered"] == 1,
          f"the totals hold across the restart: {after and after['total']}")
    check(after and after["destinations"][0]["total"]["sent"] == 1, f"the destination's too: {after}")
    check(metric('junction_messages_total{channel="orders",status="received"}') == 2,
          "/metrics reports the kept total")
    send("LOG2")
    check(wait_for(lambda: (orders_stats() or {}).get("total", {}).get("received") == 3, timeout=10),
          "the totals go on from there")
    check(metric('junction_channel_latency_seconds_count{channel="orders"}') == 3,
          "/metrics' latency histogram counts every processed message")
finally:
    finish(procs, check, tmp)
check.exit()
