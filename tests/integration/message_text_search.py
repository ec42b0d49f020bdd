"""Searching the raw content of stored messages on a running engine: MLLP
messages in, then `GET /api/v1/messages?text=` and `junction messages --text`
(read-only beside the engine) find the ones holding the text, in any case,
taken literally; the text index is a file beside the store (`<db>-text`),
and `text_index: false` deletes it at the next start while searches still
answer by reading the messages."""
import base64
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

BIN = os.environ["JUNCTION_BIN"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, engine_dir, finish, free_port, stop, wait_for  # noqa: E402

check = Checks()
mllp, admin = free_port(), free_port()
CHANNEL = ("channel: orders\n"
           f"source: {{ type: mllp, port: {mllp}, host: 127.0.0.1 }}\n"
           "storage: production\n"
           "destinations: []\n")
tmp = engine_dir("junction-text-", {"orders": CHANNEL},
                 store=f"store: {{ path: var/junction.db, sync: normal }}\nadmin: {{ port: {admin} }}")
AUTH = "Basic " + base64.b64encode(b"admin:admin-secret-1").decode()


def start():
    env = dict(os.environ, JUNCTION_ADMIN_PASSWORD="admin-secret-1")
    log = open(f"{tmp}/junction.log", "a")
    return subprocess.Popen([BIN, "run", "--config", f"{tmp}/junction.yaml"], stdout=log, stderr=subprocess.STDOUT,
                            env=env)


def send(text):
    with socket.create_connection(("127.0.0.1", mllp), timeout=10) as s:
        s.sendall(b"\x0b" + text.encode() + b"\x1c\x0d")
        data = b""
        while not data.endswith(b"\x1c\x0d"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def search(text):
    """(status, control ids found) of the admin API's search by text."""
    req = urllib.request.Request(f"http://127.0.0.1:{admin}/api/v1/messages?text=" + urllib.parse.quote(text, safe=""))
    req.add_header("Authorization", AUTH)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, [m["control_id"] for m in json.loads(r.read())["messages"]]
    except urllib.error.HTTPError as e:
        return e.code, []
    except OSError:
        return 0, []


def cli(text):
    r = subprocess.run([BIN, "messages", "--config", f"{tmp}/junction.yaml", "--text", text], capture_output=True,
                       text=True, timeout=60)
    return r.returncode, r.stdout


def orm(control, name, note):
    return (f"MSH|^~\\&|RIS|HOSP|PACS|HOSP|20260101120000||ORM^O01|{control}|P|2.5\r"
            f"PID|1||MRN-{control}^^^HOSP||{name}\rORC|NW|A-{control}\rNTE|1||{note}\r")


engine = start()
procs = [engine]
try:
    check(wait_for(lambda: search("xyz")[0] == 200, timeout=20), "the admin API answers")
    for control, name, note in [("T1", "Smith^John", "plain"), ("T2", "Jones^Mary", "'; DROP TABLE messages; --"),
                                ("T3", "Garcia^Ana", "\"a\" OR b* 100%_x")]:
        check(b"MSA|AA" in send(orm(control, name, note)), f"{control} acknowledged")
    check(search("SMITH^john") == (200, ["T1"]), f"found by name in any case: {search('SMITH^john')}")
    check(search("'; DROP TABLE") == (200, ["T2"]), "SQL-ish text taken literally")
    check(search("\"a\" OR b*") == (200, ["T3"]), "FTS-ish text taken literally")
    check(search("100%_x") == (200, ["T3"]), "LIKE wildcards taken literally")
    check(search("HOSP||")[1] == ["T3", "T2", "T1"], "newest first")
    check(search("ab")[0] == 400, "two characters: 400")
    rc, out = cli("jones^MARY")
    check(rc == 0 and "T2" in out and "T1" not in out, f"junction messages --text: {out}")
    check(wait_for(lambda: os.path.exists(f"{tmp}/var/junction.db-text")), "the text index beside the store")
finally:
    stop(procs)

# The index off: deleted at the start, searches still answer.
with open(f"{tmp}/junction.yaml", "w") as f:
    f.write(f"store: {{ path: var/junction.db, sync: normal, text_index: false }}\nadmin: {{ port: {admin} }}\n")
engine = start()
procs = [engine]
check(wait_for(lambda: search("xyz")[0] == 200, timeout=20), "the admin API answers again")
check(not os.path.exists(f"{tmp}/var/junction.db-text"), "text_index: false deletes the index")
check(search("garcia^ana") == (200, ["T3"]), "found by reading without the index")
finish(procs, check, tmp)
check.exit()
