"""The log, the event log and alerts of a running engine: `log:` writes JSON
lines to a file that SIGUSR1 reopens after it was moved; a destination going
down fires an alert once (a log line, an alert.fired event, a webhook POST)
and its return clears it once; GET /api/v1/events shows channels started and
stopped, connections (MLLP and HTTP sources; the open ones counted on the
channel), logins, a message view and mutating calls (a viewer sees only their
own); `junction validate` rejects a bad alert rule with file:line:column."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import admin_api  # noqa: E402
from checks import Checks, engine_dir, finish, free_port, port_open, wait_for  # noqa: E402
from mllp_peer import Receiver, retrying_channel  # noqa: E402
from recording_http import RecordingServer  # noqa: E402

check = Checks()
admin_port, port, peer, http_port = free_port(), free_port(), free_port(), free_port()
hook = RecordingServer({("POST", "/hook"): (204, "")}).start()
tmp = engine_dir("junction-events-", {
    "a": retrying_channel(port, peer),
    "h": f"channel: h\nsource: {{ type: http, port: {http_port}, host: 127.0.0.1 }}\ndestinations: []\n",
}, store=f"""store: {{ path: var/junction.db, sync: normal }}
admin: {{ port: {admin_port} }}
log: {{ file: log/junction.log, format: json, level: info }}
alerts:
  - name: ris-down
    when: destination_retrying
    channel: a
    destination: ris
    actions: [log, {{ webhook: {{ url: "{hook.url}/hook", headers: {{ X-Token: t1 }} }} }}]
  - name: quiet
    when: no_messages
    channel: a
    window: 1h
""")
LOG = f"{tmp}/log/junction.log"
ADMIN = ("admin", "admin-secret-1")
BASE = f"http://127.0.0.1:{admin_port}"


def api(method, path, auth=ADMIN, body=None):
    return admin_api.request(BASE, method, path, auth=auth, body=body)


def lines(path=LOG):
    """The JSON objects of a log file (every line must be one)."""
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip()]


def logged(text, path=LOG):
    return any(text in e["text"] for e in lines(path))


def events(query="", auth=ADMIN):
    status, body = api("GET", "/api/v1/events" + query, auth=auth)
    return body["events"] if status == 200 else []


def has_event(type_, text="", **fields):
    return any(e["type"] == type_ and text in e["text"] and all(e[k] == v for k, v in fields.items())
               for e in events(f"?type={type_}"))


def hooks(state):
    return [r for r in hook.received("POST", "/hook") if r.json()["state"] == state]


env = dict(os.environ, JUNCTION_ADMIN_PASSWORD=ADMIN[1])
out = open(f"{tmp}/junction.out", "w")
engine = subprocess.Popen([BIN, "run"], cwd=tmp, stdout=out, stderr=subprocess.STDOUT, env=env)
try:
    check(wait_for(lambda: port_open(port) and api("GET", "/ready")[0] == 200, timeout=30), "the engine runs")
    check(wait_for(lambda: logged("junction: running"), timeout=10), "the engine's lines go to the log file")
    first = lines()
    check(all(set(e) <= {"time", "level", "channel", "text"} and {"time", "level", "text"} <= set(e) for e in first),
          f"each line is a JSON object {{time, level, channel?, text}}: {first[:3]}")
    check("junction: running" not in open(f"{tmp}/junction.out").read(), "and not to stdout")

    # The destination is down: the alert fires once.
    r = subprocess.run([BIN, "hl7", "send", f"127.0.0.1:{port}", f"{SRC}/samples/hl7/orm_o01_nw.hl7"],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"a message is acknowledged while the destination is down: {r.stdout}{r.stderr}")
    check(wait_for(lambda: any(e.get("channel") == "a" and e["level"] == "warn" and "destination ris is failing" in e["text"]
                               for e in lines()), timeout=10), "the outage is a warn line of channel a")
    check(wait_for(lambda: len(hooks("firing")) == 1, timeout=15), "the alert's webhook is called when it fires")
    if hooks("firing"):
        sent = hooks("firing")[0]
        body = sent.json()
        check(body["alert"] == "ris-down" and set(body) == {"alert", "state", "rule", "detail", "time"}
              and "retrying" in body["detail"], f"the webhook's JSON: {body}")
        check(sent.headers.get("x-token") == "t1", "with the rule's headers")
    check(wait_for(lambda: logged("alert ris-down fired"), timeout=5), "the alert is logged")
    check(wait_for(lambda: has_event("alert.fired", "ris-down", channel="a"), timeout=5), "and recorded as an event")
    check(has_event("destination.retrying", "destination ris is failing", channel="a"), "the outage is an event")
    status, body = api("GET", "/api/v1/alerts")
    states = {a["name"]: a for a in body["alerts"]} if status == 200 else {}
    check(states.get("ris-down", {}).get("state") == "firing" and states["ris-down"]["since"],
          f"GET /api/v1/alerts shows it firing: {body}")
    check(states.get("quiet", {}).get("state") == "ok" and "no_messages" in states["quiet"]["rule"],
          f"and the other rule ok, with its rule in words: {body}")

    # logrotate moves the file; SIGUSR1 reopens it under its name.
    os.rename(LOG, LOG + ".1")
    engine.send_signal(signal.SIGUSR1)
    check(wait_for(lambda: logged("log file reopened"), timeout=10), "SIGUSR1 reopens the log file")
    before = len(lines(LOG + ".1"))

    # The destination is back: the alert clears once.
    Receiver(peer)
    check(wait_for(lambda: len(hooks("ok")) == 1, timeout=15), "the webhook is called when it clears")
    check(wait_for(lambda: logged("alert ris-down cleared"), timeout=5), "the clearing is logged in the new file")
    check(logged("destination ris is back after"), "so is the recovery")
    check(len(lines(LOG + ".1")) == before, "nothing more goes to the moved file")
    check(wait_for(lambda: has_event("alert.cleared", "ris-down"), timeout=5), "an alert.cleared event")
    check(has_event("destination.recovered", channel="a"), "a destination.recovered event")
    wait_for(lambda: False, timeout=3)
    check(len(hooks("firing")) == 1 and len(hooks("ok")) == 1, "fired once, cleared once")

    # The event log: channels, connections, logins, calls, views.
    check(has_event("channel.deployed", channel="a") and has_event("channel.started", channel="a"),
          "channel a's deployment and start")
    check(has_event("connection.opened", "connection from 127.0.0.1", channel="a"), "the MLLP connection opened")
    check(wait_for(lambda: has_event("connection.closed", channel="a"), timeout=5), "and closed")

    # A listener's open connections, counted on the channel; an HTTP source's connections are events too.
    def source(name):
        status, body = api("GET", f"/api/v1/channels/{name}")
        return body["source"] if status == 200 else {}
    check(source("a").get("connections") == 0 and source("a").get("address") == f"mllp 127.0.0.1:{port}",
          f"channel a listens, nobody connected: {source('a')}")
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    check(wait_for(lambda: source("a").get("connections") == 2, timeout=5), f"two connected: {source('a')}")
    for s in held:
        s.close()
    check(wait_for(lambda: source("a").get("connections") == 0, timeout=5), f"none once they close: {source('a')}")
    with socket.create_connection(("127.0.0.1", http_port)) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
        answer = s.recv(4096)
    check(answer.startswith(b"HTTP/1.1 400"), f"the HTTP source answers (not HL7: 400): {answer[:60]}")
    check(wait_for(lambda: has_event("connection.closed", f"http 127.0.0.1:{http_port}: connection from 127.0.0.1:",
                                     channel="h"), timeout=5), "the HTTP connection's close is an event")
    check(has_event("connection.opened", f"http 127.0.0.1:{http_port}: connection from 127.0.0.1:", channel="h"),
          "and its opening")
    check(source("h").get("connections") == 0, f"and channel h counts no open connection: {source('h')}")
    # A sender that connects for each message: a few events a minute, the rest counted.
    for _ in range(40):
        socket.create_connection(("127.0.0.1", http_port)).close()
    check(wait_for(lambda: any("counted, not recorded one by one" in e["text"]
                               for e in events("?type=connection.closed&channel=h&limit=100")), timeout=10),
          "a flood of connections is recorded a few a minute, the rest counted")
    check(len(events("?type=connection.opened&channel=h&limit=1000")) <= 21,
          f"at most 21 connection.opened events of channel h this minute: {len(events('?type=connection.opened&channel=h&limit=1000'))}")
    check(wait_for(lambda: source("h").get("connections") == 0, timeout=5),
          f"and every connection counted on the channel: {source('h')}")
    check(source("a").get("connections") is not None and api("GET", "/api/v1/channels")[0] == 200,
          "the channel list answers")
    check(api("GET", "/api/v1/stats", auth=("admin", "wrong"))[0] == 401, "a wrong password: 401")
    check(has_event("login.failed", user="admin"), "a failed login, with its user name")
    check(any(e["user"] == "admin" and e["address"] == "127.0.0.1" for e in events("?type=login.ok")),
          "the admin's login from 127.0.0.1")
    status, found = api("GET", "/api/v1/messages?channel=a")
    mid = found["messages"][0]["id"] if status == 200 and found["messages"] else 0
    check(api("GET", f"/api/v1/messages/{mid}")[0] == 200, "a message is opened")
    check(has_event("message.viewed", f"message {mid}", user="admin", address="127.0.0.1"),
          "who viewed which message, from where")
    check(api("POST", "/api/v1/channels/a/stop")[0] == 200, "channel a stops")
    check(has_event("api.post", "POST /api/v1/channels/a/stop: 200", user="admin", channel="a"), "the call is an event")
    check(wait_for(lambda: has_event("channel.stopped", channel="a"), timeout=5), "the stop is an event")
    check(api("POST", "/api/v1/channels/a/start")[0] == 200, "channel a starts again")
    check(api("POST", "/api/v1/users", body={"name": "watcher", "role": "viewer", "password": "watcher-pass"})[0] == 201,
          "a viewer is added")
    viewer = ("watcher", "watcher-pass")
    seen = events(auth=viewer)
    check(seen and all(e["user"] in (None, "watcher") for e in seen if e["type"].startswith(("api.", "login.", "message."))),
          "a viewer sees no other user's logins, calls or views")
    check(any(e["type"] == "channel.started" for e in seen), "but sees the channels' events")
    page = events("?limit=2")
    status, body = api("GET", f"/api/v1/events?limit=2&before={page[-1]['id']}") if len(page) == 2 else (0, None)
    check(status == 200 and body["events"] and body["events"][0]["id"] < page[-1]["id"], "events are paged by id")
    check(api("GET", "/api/v1/events?limit=0")[0] == 400, "limit 0: 400")
finally:
    finish([engine], check, tmp, log="log/junction.log")
    hook.stop()

# junction validate checks the alerts section.
bad = engine_dir("junction-events-bad-", {}, store="""alerts:
  - name: x
    when: errors
    window: 5 minutes
    colour: red
""")
r = subprocess.run([BIN, "validate", "--config", f"{bad}/junction.yaml"], capture_output=True, text=True)
text = r.stdout + r.stderr
check(r.returncode != 0 and "junction.yaml:4:13" in text and "junction.yaml:5:5" in text and "colour" in text,
      f"a bad duration and an unknown key of a rule, each with file:line:column: {text}")

# An alert rule that names no channel of the folder is a problem too.
typo = engine_dir("junction-events-typo-", {
    "a": "channel: a\nsource: { type: schedule, interval: 1h }\ndestinations:\n  - { name: out, type: file, directory: out }\n",
}, store="alerts:\n  - { name: x, when: channel_stopped, channel: b }\n  - { name: y, when: queue_depth, channel: a, destination: ot, over: 5 }\n")
r = subprocess.run([BIN, "validate", "--config", f"{typo}/junction.yaml"], capture_output=True, text=True)
text = r.stdout + r.stderr
check(r.returncode == 1 and "junction.yaml:2:5: alert 'x': no channel 'b'" in text
      and "junction.yaml:3:5: alert 'y': channel 'a' has no destination 'ot'" in text,
      f"alert rules naming a channel or destination that does not exist: {text}")
for folder in (bad, typo):
    shutil.rmtree(folder, ignore_errors=True)
check.exit()
