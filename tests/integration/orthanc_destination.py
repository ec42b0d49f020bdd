"""The orthanc destination against real Orthanc servers: DCMTK's storescu
sends an instance to Junction's dicom source and the orthanc destination
uploads it, with the PatientID a script changed; a file Orthanc cannot parse
is kept as ERROR with Orthanc's answer; each stable study of one Orthanc is
stored to a second Orthanc (a peer) and to DCMTK's storescp (a modality),
and marked with a metadata a script sets; a message naming a study deletes
it."""
import json
import os
import subprocess
import sys

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, engine_dir, finish, free_port, port_open, wait_for  # noqa: E402
from orthanc_peer import Orthanc  # noqa: E402

CT = os.path.join(SRC, "samples", "dicom", "ct_small.dcm")
check = Checks()
procs = []
dicom_port, scp_port = free_port(), free_port()
tmp = engine_dir("junction-orthanc-destination-", {
    "images": f"""channel: images
source: {{ type: dicom, port: {dicom_port}, host: 127.0.0.1, ae_title: JUNCTION }}
script: orthanc.lua
transform: rename
destinations:
  - {{ name: archive, type: orthanc, server: main }}
""",
    "raw": """channel: raw
source: { type: file, directory: inbox/raw, data_type: raw }
destinations:
  - { name: archive, type: orthanc, server: main, retry: { attempts: 1 } }
""",
    "forward": """channel: forward
source: { type: orthanc, server: main, changes: [StableStudy], poll_interval: 200ms }
script: orthanc.lua
destinations:
  - { name: peer, type: orthanc, server: main, action: store_to_peer, target: second }
  - { name: pacs, type: orthanc, server: main, action: store_to_modality, target: pacs }
  - { name: mark, type: orthanc, server: main, action: set_metadata, transform: forwarded }
""",
    "cleanup": """channel: cleanup
source: { type: file, directory: inbox/cleanup, data_type: json }
destinations:
  - { name: drop, type: orthanc, server: second, action: delete }
"""})
with open(f"{tmp}/orthanc.lua", "w") as f:
    f.write("""
function rename(msg)
  msg["00100020"] = { vr = "LO", Value = { "VIA-JUNCTION" } }
end

function forwarded(msg)
  return { level = "study", id = msg.change.ID, metadata = { Forwarded = "yes" } }
end
""")
os.makedirs(f"{tmp}/pacs")
second = Orthanc(workdir=os.path.join(tmp, "second"), name="second", aet="SECOND").start()
main = Orthanc(workdir=os.path.join(tmp, "main"))
main.config["UserMetadata"] = {"Forwarded": 1024}
main.config["OrthancPeers"] = {"second": [second.url + "/", second.user, second.password]}
main.config["DicomModalities"] = {"pacs": ["PACS", "127.0.0.1", scp_port]}
main.start()
with open(f"{tmp}/junction.yaml", "a") as f:
    f.write(f"""orthanc:
  main: {{ url: "{main.url}", username: {main.user}, password: {main.password}, timeout: 10s }}
  second: {{ url: "{second.url}", username: {second.user}, password: {second.password}, timeout: 10s }}
""")
log_path = f"{tmp}/junction.log"
log = lambda: open(log_path).read()  # noqa: E731


def messages(channel, status=None):
    args = [BIN, "messages", "--config", f"{tmp}/junction.yaml", "--channel", channel]
    if status:
        args += ["--status", status]
    return subprocess.run(args, capture_output=True, text=True).stdout.partition("\n")[2]  # without the header row


try:
    procs.append(subprocess.Popen(["storescp", "-aet", "PACS", "-od", f"{tmp}/pacs", str(scp_port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    procs.append(subprocess.Popen([BIN, "run"], cwd=tmp, stdout=open(log_path, "w"), stderr=subprocess.STDOUT))
    check(wait_for(lambda: port_open(dicom_port) and port_open(scp_port), 15), "Junction and storescp listen")

    # dicom source -> upload, with the tag the script changed.
    r = subprocess.run(["storescu", "-aec", "JUNCTION", "127.0.0.1", str(dicom_port), CT], capture_output=True, text=True)
    check(r.returncode == 0, f"storescu sends the instance: {r.stderr}")
    found = lambda: main.post("/tools/find", {"Level": "Instance", "Query": {"PatientID": "VIA-JUNCTION"}})  # noqa: E731
    check(wait_for(lambda: len(found()) == 1, 20), f"the instance is in Orthanc with the new PatientID: {found()}\n{log()}")
    instance = found()[0] if found() else ""
    check(wait_for(lambda: "SENT" in messages("images"), 10), f"its message is SENT: {messages('images')}")

    # A file Orthanc cannot parse: ERROR, with Orthanc's answer.
    os.makedirs(f"{tmp}/inbox/raw", exist_ok=True)
    with open(f"{tmp}/inbox/raw/broken.dcm", "wb") as f:
        f.write(b"\0" * 128 + b"DICM" + b"not a dataset" * 10)
    check(wait_for(lambda: "ERROR" in messages("raw", "ERROR"), 20), f"the broken file is an ERROR: {messages('raw')}")
    ids = messages("raw", "ERROR").split()
    shown = subprocess.run([BIN, "messages", "--config", f"{tmp}/junction.yaml", "--show", ids[0] if ids else "0"],
                           capture_output=True, text=True).stdout
    check("orthanc server 'main'" in shown and "POST /instances: 400 Bad Request" in shown,
          f"the error names the server and Orthanc's refusal: {shown[-1500:]}")
    check('"HttpStatus" : 400' in shown, "and Orthanc's answer is kept as the response")

    # A stable study: to the peer, to the modality, and marked.
    study = main.get(f"/instances/{instance}/study")["ID"] if instance else ""
    check(wait_for(lambda: second.get("/studies") == [study], 30), f"the study reaches the peer: {second.get('/studies')}")
    pacs_files = lambda: [n for n in os.listdir(f"{tmp}/pacs") if not n.startswith(".")]  # noqa: E731
    check(wait_for(lambda: len(pacs_files()) == 1, 30), f"and the modality: {pacs_files()}")
    metadata = lambda: main.get(f"/studies/{study}/metadata?expand") if study else {}  # noqa: E731
    check(wait_for(lambda: metadata().get("Forwarded") == "yes", 30), f"and is marked forwarded: {metadata()}")
    check(wait_for(lambda: "SENT" in messages("forward"), 10), f"the message is SENT: {messages('forward')}")
    shown = subprocess.run([BIN, "messages", "--config", f"{tmp}/junction.yaml", "--show",
                            (messages("forward").split() or ["0"])[0]], capture_output=True, text=True).stdout
    check('"InstancesCount"' in shown and '"RemoteAet"' in shown, f"Orthanc's answers are the responses: {shown[-1500:]}")

    # A message naming a study deletes it.
    os.makedirs(f"{tmp}/inbox/cleanup", exist_ok=True)
    with open(f"{tmp}/inbox/cleanup/drop.json", "w") as f:
        json.dump({"level": "study", "id": study}, f)
    check(wait_for(lambda: second.get("/studies") == [], 20), f"the study is deleted from the peer: {second.get('/studies')}")
finally:
    main.stop()
    second.stop()
    finish(procs, check, tmp)
check.exit()
