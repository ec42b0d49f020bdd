"""The http source and destination in the real binary, with curl-free Python
clients and a recording HTTP server as the peer: a request in is answered once
stored and goes out as exactly the documented request (method, path, query,
auth header, body); a peer answering 500 then 200 gets the message once more
and it is SENT; a 4xx is an ERROR with the peer's answer kept (junction
messages --show); the source refuses missing credentials (401), a body over
max_body (413) and JSON the channel cannot read (400, kept as ERROR); and a
message answered 200 survives a SIGKILL right after it, delivered after the
restart; a destination transform's list of parts goes out as the
multipart/form-data body OpenMRS takes for an attachment (a PNG file part,
patient and fileCaption fields)."""
import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

BIN = os.environ["JUNCTION_BIN"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, engine_dir, finish, free_port, port_open, wait_for  # noqa: E402
from recording_http import RecordingServer  # noqa: E402

check = Checks()
TOKEN = "hook-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def post(port, path, body, headers=None, method="POST"):
    """(status, headers, body) of a request to the engine."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


available = {"on": False}  # the durable channel's peer answers 503 until this is set


def durable_answer(req):
    return (200, {"ok": True}) if available["on"] else (503, "not yet")


peer = RecordingServer({
    ("PUT", "/fhir/Patient/MRN482913"): (201, {"resourceType": "Patient", "id": "MRN482913"}, {"Location": "Patient/MRN482913"}),
    ("POST", "/flaky"): [(500, "busy, try later"), (200, {"ok": True})],
    ("POST", "/missing"): (404, {"error": "no such patient"}),
    ("POST", "/durable"): durable_answer,
    ("POST", "/openmrs/ws/rest/v1/attachment"): (201, {"uuid": "att-1"}),
}).start()
ports = {name: free_port() for name in ("hook", "flaky", "missing", "durable", "attach")}
retry = "retry: { attempts: 100, backoff: 200ms, max_backoff: 400ms, jitter: 0 }"


def forwarder(name):
    """A channel taking requests on its port and POSTing each to the peer's /NAME."""
    return f"""channel: {name}
source: {{ type: http, port: {ports[name]}, host: 127.0.0.1 }}
destinations:
  - {{ name: peer, type: http, url: "{peer.url}/{name}", {retry} }}
"""


channels = {
    "hook": f"""channel: hook
source: {{ type: http, port: {ports['hook']}, host: 127.0.0.1, path: /hook, max_body: 4KB,
          auth: {{ type: bearer, token: {TOKEN} }} }}
destinations:
  - name: fhir
    type: http
    method: PUT
    url: "{peer.url}/fhir/Patient/${{/id}}?source=${{channel}}&family=${{/name/0/family}}"
    headers: {{ X-Message: "${{id}}", Accept: application/fhir+json }}
    content_type: application/fhir+json
    auth: {{ type: basic, username: admin, password: "Admin123" }}
""",
    "attach": f"""channel: attach
source: {{ type: http, port: {ports['attach']}, host: 127.0.0.1 }}
script: attach.lua
destinations:
  - name: openmrs
    type: http
    url: "{peer.url}/openmrs/ws/rest/v1/attachment"
    body: multipart
    auth: {{ type: basic, username: admin, password: Admin123 }}
    transform: to_attachment
""",
}
channels.update({name: forwarder(name) for name in ("flaky", "missing", "durable")})
tmp = engine_dir("junction-http-", channels)
with open(f"{tmp}/attach.lua", "w") as f:
    f.write("""
function to_attachment(msg)
  return {
    {name = "patient", value = msg.patient},
    {name = "fileCaption", value = msg.caption},
    {name = "file", filename = "preview.png", content_type = "image/png", base64 = msg.png},
  }
end
""")
procs = []
log_path = f"{tmp}/junction.log"


def start():
    p = subprocess.Popen([BIN, "run"], cwd=tmp, stdout=open(log_path, "a"), stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def messages(*args):
    return subprocess.run([BIN, "messages", "--config", f"{tmp}/junction.yaml", *args],
                          capture_output=True, text=True).stdout


try:
    engine = start()
    check(wait_for(lambda: all(port_open(p) for p in ports.values()), 15), "every http source listens")

    # -- in, stored, out as the documented request
    patient = json.dumps({"resourceType": "Patient", "id": "MRN482913", "name": [{"family": "Doe & Sons", "given": ["Jane"]}]})
    status, headers, body = post(ports["hook"], "/hook", patient, {**AUTH, "Content-Type": "application/json"})
    check(status == 200, f"the request is answered 200: {status} {body}")
    mid = headers.get("X-Message-Id", "")
    check(mid.isdigit() and json.loads(body) == {"id": int(mid)}, f"with the message id: {headers} {body}")
    check(wait_for(lambda: len(peer.received("PUT", "/fhir/Patient/MRN482913")) == 1, 15), "the destination sends it")
    sent = peer.received("PUT", "/fhir/Patient/MRN482913")
    if sent:
        r = sent[0]
        check(r.query == {"source": ["hook"], "family": ["Doe & Sons"]}, f"query with the fields, URL-encoded: {r.target}")
        check("family=Doe%20%26%20Sons" in r.target, f"encoded as %20 and %26: {r.target}")
        check(r.headers.get("authorization") == "Basic " + base64.b64encode(b"admin:Admin123").decode(),
              f"basic auth: {r.headers.get('authorization')}")
        check(r.headers.get("content-type") == "application/fhir+json", f"content type: {r.headers.get('content-type')}")
        check(r.headers.get("accept") == "application/fhir+json", "a set header")
        check(r.headers.get("x-message") == mid, f"a templated header: {r.headers.get('x-message')}")
        check(r.body == patient.encode(), f"the body is the message, byte for byte: {r.body[:200]}")
    check(wait_for(lambda: f"{mid}  " in messages("--channel", "hook", "--status", "SENT"), 10), "the message is SENT")
    shown = messages("--show", mid)
    check('"status":201' in shown and '"location":"Patient/MRN482913"' in shown,
          f"the peer's answer is kept as JSON: {shown[-400:]}")

    # -- what the source refuses
    status, headers, _ = post(ports["hook"], "/hook", patient)
    check(status == 401 and headers.get("WWW-Authenticate", "").startswith("Bearer"), f"no credentials: 401 ({status}, {headers})")
    status, _, _ = post(ports["hook"], "/hook", patient, {"Authorization": "Bearer wrong"})
    check(status == 401, f"wrong token: 401 ({status})")
    status, _, body = post(ports["hook"], "/hook", json.dumps({"id": "x" * 5000}), AUTH)
    check(status == 413, f"a body over max_body: 413 ({status} {body})")
    status, headers, body = post(ports["hook"], "/hook", "", AUTH, method="GET")
    check(status == 405 and headers.get("Allow") == "POST, PUT", f"GET: 405 with Allow ({status}, {headers})")
    status, headers, body = post(ports["hook"], "/hook", '{"id": "MRN1", "name": [}', AUTH)
    bad = headers.get("X-Message-Id", "")
    check(status == 400 and "not JSON" in body, f"bad JSON: 400 with the reason ({status} {body})")
    check(wait_for(lambda: f"{bad}  " in messages("--channel", "hook", "--status", "ERROR"), 10)
          and "not JSON" in messages("--channel", "hook", "--status", "ERROR"),
          f"and kept as ERROR: {messages('--channel', 'hook')}")
    check('{"id": "MRN1", "name": [}' in messages("--show", bad), "with its body as it came")
    check(len(peer.received("PUT")) == 1, "nothing refused reached the destination")

    # -- 500 then 200: sent again, once
    status, headers, _ = post(ports["flaky"], "/", '{"n": 1}')
    fid = headers.get("X-Message-Id", "")
    check(status == 200, f"flaky: taken ({status})")
    check(wait_for(lambda: f"{fid}  " in messages("--channel", "flaky", "--status", "SENT"), 15),
          f"flaky: SENT after a retry: {messages('--channel', 'flaky')}")
    flaky = peer.received("POST", "/flaky")
    check(len(flaky) == 2 and all(r.body == b'{"n": 1}' for r in flaky), f"flaky: two requests, the same body: {flaky}")
    check("2 attempt(s)" in messages("--show", fid), f"flaky: two attempts recorded: {messages('--show', fid)}")

    # -- 4xx: ERROR at once, the answer kept
    status, headers, _ = post(ports["missing"], "/", '{"n": 2}')
    xid = headers.get("X-Message-Id", "")
    check(wait_for(lambda: f"{xid}  " in messages("--channel", "missing", "--status", "ERROR"), 15), "4xx: ERROR")
    shown = messages("--show", xid)
    check("1 attempt(s)" in shown and "HTTP 404 Not Found" in shown and "no such patient" in shown,
          f"4xx: not retried, the error and the peer's body shown: {shown}")
    check(len(peer.received("POST", "/missing")) == 1, "4xx: one request")

    # -- a multipart body from the parts a transform returns (an OpenMRS attachment)
    png = bytes([0x89]) + b"PNG\r\n\x1a\n" + bytes(range(256))
    status, _, _ = post(ports["attach"], "/", json.dumps({"patient": "5b2f2c8a-uuid", "caption": "CT chest, série 1",
                                                          "png": base64.b64encode(png).decode()}))
    check(status == 200, f"attach: taken ({status})")
    check(wait_for(lambda: len(peer.received("POST", "/openmrs/ws/rest/v1/attachment")) == 1, 15), "attach: posted")
    posted = peer.received("POST", "/openmrs/ws/rest/v1/attachment")
    if posted:
        parts = posted[0].multipart()
        check(sorted(parts) == ["file", "fileCaption", "patient"], f"attach: the three parts: {sorted(parts)}")
        check(parts.get("patient", ({}, b""))[1] == b"5b2f2c8a-uuid", "attach: patient")
        check(parts.get("fileCaption", ({}, b""))[1] == "CT chest, série 1".encode(), "attach: fileCaption, UTF-8")
        head, data = parts.get("file", ({}, b""))
        check(data == png, "attach: the file part holds the PNG's bytes")
        check(head.get("content-type") == "image/png" and 'filename="preview.png"' in head.get("content-disposition", ""),
              f"attach: the file part's headers: {head}")
        check(posted[0].headers.get("authorization") == "Basic " + base64.b64encode(b"admin:Admin123").decode(), "attach: auth")

    # -- answered means stored: SIGKILL right after the 200s, then a restart delivers them
    bodies = [json.dumps({"seq": i}) for i in range(20)]
    answered = []
    for b in bodies:
        status, headers, _ = post(ports["durable"], "/", b)
        if status == 200:
            answered.append(headers["X-Message-Id"])
    engine.send_signal(signal.SIGKILL)
    engine.wait()
    check(len(answered) == 20, f"durable: every request answered 200 ({len(answered)})")
    available["on"] = True
    engine = start()
    check(wait_for(lambda: port_open(ports["durable"]), 15), "restarted")
    check(wait_for(lambda: set(bodies) <= {r.body.decode() for r in peer.received("POST", "/durable")}, 30),
          "durable: every answered message is delivered after the restart")
    listed = messages("--channel", "durable", "--limit", "100")
    check(all(f"{i}  " in listed for i in answered), f"durable: every answered id is in the store: {listed}")
    check(wait_for(lambda: messages("--channel", "durable", "--counts").strip() == "SENT 20", 30),
          f"durable: all 20 SENT: {messages('--channel', 'durable', '--counts')}")
    check(engine.poll() is None, "the engine goes on")
finally:
    peer.stop()
    finish(procs, check, tmp)
check.exit()
