"""Repairing messages on a running `junction run`: an MLLP destination whose
peer is down fails a message (ERROR) and holds another (queued); once the peer
is up the queued one arrives, the failed one is resent (API) and reprocessed
(CLI), an edited reprocess shows the edit at the peer, a selection is exported
as an HL7 file and a zip and read back, a message is deleted, and `junction
messages` lists them with a header row, the error text, paging, the total when
the limit cuts the list, an error for an unknown channel, and the patient and
accession of a DICOM source's message."""
import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, engine_dir, finish, free_port, start_engine, wait_for  # noqa: E402
from mllp_peer import Receiver  # noqa: E402

check = Checks()
admin_port, in_port, patient_port, peer_port, dicom_port = (free_port() for _ in range(5))
tmp = engine_dir("junction-repairs-", {
    # Fails fast: two attempts, then ERROR.
    "orders": "channel: orders\n"
              f"source: {{ type: mllp, port: {in_port} }}\n"
              "destinations:\n"
              f"  - {{ name: emr, type: mllp, host: 127.0.0.1, port: {peer_port},\n"
              "      retry: { attempts: 2, backoff: 100ms, max_backoff: 100ms } }\n",
    # Waits for the peer: retries for long.
    "patient": "channel: patient\n"
               f"source: {{ type: mllp, port: {patient_port} }}\n"
               "destinations:\n"
               f"  - {{ name: emr, type: mllp, host: 127.0.0.1, port: {peer_port},\n"
               "      retry: { attempts: 100000, backoff: 100ms, max_backoff: 200ms } }\n",
    "images": "channel: images\n"
              f"source: {{ type: dicom, port: {dicom_port}, ae_title: JUNCTION, storage_dir: dicom }}\n"
              "destinations: []\n",
}, store=f"store: {{ path: var/junction.db, sync: normal }}\nadmin: {{ port: {admin_port} }}")
BASE = f"http://127.0.0.1:{admin_port}"
ADMIN = ("admin", "admin-secret-1")
ORDER = "MSH|^~\\&|RIS|H|EMR|H|20261207120000||ORM^O01|{cid}|P|2.5.1\rPID|||{pid}\rORC|NW||ACC{cid}\r"


def api(method, path, body=None, raw=False):
    """(status, JSON or bytes, headers) of a request as the admin."""
    req = urllib.request.Request(BASE + path, method=method, data=None if body is None else json.dumps(body).encode())
    if body is not None:
        req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, data, headers = r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, data, headers = e.code, e.read(), dict(e.headers)
    except OSError:
        return 0, None, {}
    if raw:
        return status, data, headers
    try:
        return status, json.loads(data.decode()) if data else None, headers
    except ValueError:
        return status, data, headers


def cli(*args):
    env = dict(os.environ)
    env.pop("JUNCTION_TOKEN", None)
    env["JUNCTION_USER"], env["JUNCTION_PASSWORD"] = ADMIN
    return subprocess.run([BIN, *args, "--config", f"{tmp}/junction.yaml"], capture_output=True, text=True, env=env,
                          timeout=60)


def send(port, cid, pid="PAT1"):
    path = f"{tmp}/{cid}.hl7"
    with open(path, "w") as f:
        f.write(ORDER.format(cid=cid, pid=pid))
    return subprocess.run([BIN, "hl7", "send", f"127.0.0.1:{port}", path], capture_output=True, text=True, timeout=30)


def message(mid):
    return api("GET", f"/api/v1/messages/{mid}")[1]


def find(channel, control_id):
    status, body, _ = api("GET", f"/api/v1/messages?channel={channel}&control_id={control_id}")
    return body["messages"][0] if status == 200 and body["messages"] else None


def status_of(mid):
    m = message(mid)
    return m["status"] if m else None


def delivery(mid):
    return message(mid)["deliveries"][0]


procs = []
try:
    procs.append(start_engine(tmp, ADMIN[1]))
    check(wait_for(lambda: api("GET", "/ready")[0] == 200, timeout=30), "the engine is ready")

    # The peer is down: M1 fails, P1 waits in the queue.
    check(send(in_port, "M1").returncode == 0, "M1 is acknowledged")
    check(wait_for(lambda: find("orders", "M1") and find("orders", "M1")["status"] == "ERROR", timeout=30),
          "M1 goes ERROR with its peer down")
    m1 = find("orders", "M1")["id"]
    error = delivery(m1)["error"]
    check(error != "", f"its delivery has an error: {error}")
    check(send(patient_port, "P1").returncode == 0, "P1 is acknowledged")
    check(wait_for(lambda: find("patient", "P1") and find("patient", "P1")["status"] == "QUEUED", timeout=30),
          "P1 stays queued")
    status, body, _ = api("POST", f"/api/v1/messages/{find('patient', 'P1')['id']}/resend", {"destination": "emr"})
    check(status == 409 and "queued already" in body["error"], f"a queued delivery is not resent: {status} {body}")

    # `junction messages`: a header row, the error text of the ERROR row.
    r = cli("messages", "--channel", "orders")
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and lines and re.match(r"ID\s+RECEIVED\s+CHANNEL\s+STATUS\s+TYPE\s+CONTROL ID\s+PATIENT\s+"
                                                   r"ACCESSION\s+ERROR", lines[0]), f"a header row: {r.stdout}{r.stderr}")
    row = next((ln for ln in lines if ln.startswith(f"{m1} ")), "")
    check("ERROR" in row and "emr: " in row and error.split(":")[0] in row, f"the ERROR row has its error: {row}")
    check(re.search(r"\bPAT1\b", row) and "ACCM1" in row, f"patient and accession columns: {row}")
    r = cli("messages", "--channel", "nope")
    check(r.returncode == 2 and "no channel 'nope'" in r.stderr, f"an unknown channel: {r.returncode} {r.stderr}")

    # By a destination's state: M1 failed at emr, P1 waits for it.
    p1 = find("patient", "P1")["id"]
    ids = lambda r: [int(ln.split()[0]) for ln in r.stdout.splitlines()[1:] if ln and ln.split()[0].isdigit()]  # noqa: E731
    r = cli("messages", "--destination-status", "ERROR")
    check(r.returncode == 0 and ids(r) == [m1], f"messages --destination-status ERROR: {r.stdout}{r.stderr}")
    r = cli("messages", "--destination", "emr", "--destination-status", "QUEUED")
    check(r.returncode == 0 and ids(r) == [p1], f"messages --destination emr --destination-status QUEUED: {r.stdout}")
    r = cli("messages", "--destination-status", "RECEIVED")
    check(r.returncode == 2 and "unknown destination status" in r.stderr, f"a message state is not a delivery's: {r.stderr}")
    found = api("GET", "/api/v1/messages?destination=emr&destination_status=QUEUED&channel=patient")[1]["messages"]
    check([m["id"] for m in found] == [p1], f"the API's destination_status search: {found}")

    # The peer comes up: the queued one arrives by itself, the failed one when resent.
    peer = Receiver(peer_port)
    check(wait_for(lambda: "P1" in peer.ids(), timeout=30), "the queued P1 arrives once the peer is up")
    check(status_of(m1) == "ERROR" and "M1" not in peer.ids(), "M1 stays ERROR until it is repaired")
    status, body, _ = api("POST", f"/api/v1/messages/{m1}/resend", {"destination": "emr"})
    check(status == 202 and body == {"id": m1, "destination": "emr", "status": "QUEUED"}, f"resend: {status} {body}")
    check(wait_for(lambda: peer.received.get("M1") == 1, timeout=30), "the resent M1 arrives")
    check(wait_for(lambda: status_of(m1) == "SENT", timeout=10), "M1 is SENT")

    # Reprocess from the CLI: a new message through the channel, linked to M1.
    r = cli("messages", "--reprocess", str(m1))
    found = re.search(r"reprocessed as message (\d+)", r.stdout)
    check(r.returncode == 0 and found, f"messages --reprocess: {r.stdout}{r.stderr}")
    copy = int(found.group(1)) if found else 0
    check(wait_for(lambda: peer.received.get("M1") == 2, timeout=30), "the reprocessed M1 arrives")
    detail = message(copy)
    check(detail["original"] == m1 and detail["source"] == f"reprocess of #{m1} by admin",
          f"the copy is linked to M1: {detail['original']} {detail['source']}")
    check(message(m1)["copies"] == [copy], f"M1 lists its copy: {message(m1)['copies']}")

    # An edited reprocess: the edit reaches the peer.
    with open(f"{tmp}/edited.hl7", "w") as f:
        f.write(ORDER.format(cid="M1E", pid="PAT9"))
    r = cli("messages", "--reprocess", str(m1), "--raw-file", f"{tmp}/edited.hl7")
    found = re.search(r"reprocessed as message (\d+)", r.stdout)
    check(r.returncode == 0 and found, f"messages --reprocess --raw-file: {r.stdout}{r.stderr}")
    edited = int(found.group(1)) if found else 0
    check(wait_for(lambda: "M1E" in peer.ids(), timeout=30), "the edited message arrives")
    check("PID|||PAT9" in peer.last.get("M1E", ""), f"with the edit: {peer.last.get('M1E')!r}")

    # Resend from the CLI, and its errors.
    r = cli("messages", "--resend", str(m1), "--destination", "emr")
    check(r.returncode == 0 and "queued again" in r.stdout, f"messages --resend: {r.stdout}{r.stderr}")
    check(wait_for(lambda: peer.received.get("M1") == 3, timeout=30), "resent from the CLI, it arrives")
    r = cli("messages", "--resend", str(m1), "--destination", "nowhere")
    check(r.returncode == 1 and "404" in r.stderr, f"an unknown destination: {r.stderr}")
    r = cli("messages", "--resend", str(m1))
    check(r.returncode == 2, "--resend needs --destination")

    # Export the channel's messages and read them back.
    for cid in ("M2", "M3"):
        send(in_port, cid)
    check(wait_for(lambda: {"M2", "M3"} <= peer.ids(), timeout=30), "M2 and M3 arrive")
    status, data, headers = api("GET", "/api/v1/messages/export?channel=orders&name=orders.hl7", raw=True)
    check(status == 200 and headers.get("Content-Disposition") == 'attachment; filename="orders.hl7"',
          f"export: {status} {headers.get('Content-Disposition')}")
    blocks = [b for b in data.decode().split("\r\n\r\n") if b.strip()]
    ids = [b.split("\r\n")[0].split("|")[9] for b in blocks]
    check(ids == ["M1", "M1", "M1E", "M2", "M3"], f"one block per message, oldest first: {ids}")
    check(all(b.split("\r\n")[1].startswith("PID|") for b in blocks), "each block's segments on lines")
    status, data, headers = api("GET", "/api/v1/messages/export?channel=orders&format=zip&name=orders.zip", raw=True)
    check(status == 200 and headers.get("Content-Type") == "application/zip", f"zip export: {status} {headers}")
    with open(f"{tmp}/orders.zip", "wb") as f:
        f.write(data)
    r = subprocess.run(["unzip", "-t", f"{tmp}/orders.zip"], capture_output=True, text=True)
    check(r.returncode == 0 and "No errors detected" in r.stdout, f"unzip -t: {r.stdout}{r.stderr}")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        check(z.testzip() is None and f"{m1}.hl7" in z.namelist(), f"zip entries: {z.namelist()}")
        check(z.read(f"{m1}.hl7").decode() == ORDER.format(cid="M1", pid="PAT1"), "an entry is the message as received")
    status, body, _ = api("GET", "/api/v1/messages/export?name=..%2F..%2Fetc%2Fpasswd")
    check(status == 400 and "name" in body["error"], f"a path in the export's name: {status} {body}")

    # Paging and the total when the limit cuts the list.
    r = cli("messages", "--channel", "orders", "--limit", "2")
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and len(lines) == 4 and re.match(r"showing 2 of 5 \(older ones: --before \d+\)", lines[-1]),
          f"messages --limit 2: {r.stdout}{r.stderr}")
    before = re.search(r"--before (\d+)", lines[-1]).group(1) if lines else "0"
    r = cli("messages", "--channel", "orders", "--limit", "2", "--before", before)
    page2 = [ln.split()[0] for ln in r.stdout.splitlines()[1:] if ln[:1].isdigit()]
    check(len(page2) == 2 and all(int(i) < int(before) for i in page2), f"the next page: {r.stdout}")
    r = cli("messages", "--channel", "orders", "--limit", "50")
    check("showing" not in r.stdout, "no total when everything is shown")

    # Delete (admin): gone from the list.
    status, _, _ = api("DELETE", f"/api/v1/messages/{copy}")
    check(status == 204, f"delete: {status}")
    check(api("GET", f"/api/v1/messages/{copy}")[0] == 404, "the deleted message is gone")
    check(message(m1)["copies"] == [edited], f"M1 no longer lists it: {message(m1)['copies']}")

    # A DICOM source's message: patient id and accession number as columns.
    shutil.copy(f"{SRC}/samples/dicom/ct_small.dcm", f"{tmp}/ct.dcm")
    subprocess.run(["dcmodify", "-nb", "-i", "(0008,0050)=ACC-CT-7", f"{tmp}/ct.dcm"], check=True, capture_output=True)
    r = subprocess.run(["storescu", "-aec", "JUNCTION", "127.0.0.1", str(dicom_port), f"{tmp}/ct.dcm"],
                       capture_output=True, text=True, env=dict(os.environ, TCP_NODELAY="1"), timeout=60)
    check(r.returncode == 0, f"storescu: {r.stderr[:300]}")
    check(wait_for(lambda: len(cli("messages", "--channel", "images").stdout.splitlines()) == 2, timeout=30),
          "the image is a message")
    row = cli("messages", "--channel", "images").stdout.splitlines()[-1]
    check(re.search(r"\b1CT1\b", row) and "ACC-CT-7" in row, f"patient and accession of the image: {row}")
    check(api("GET", "/api/v1/messages?accession=ACC-CT-7")[1]["messages"][0]["patient_id"] == "1CT1",
          "searchable by accession")
finally:
    finish(procs, check, tmp)
check.exit()
