"""Scripts look things up in a real Orthanc through the orthanc module: the
servers named in junction.yaml are checked at start (a wrong password is
logged, naming the server), a transform finds the study of an order's patient
and writes its StudyInstanceUID into the message, and when Orthanc is gone
the message is kept as ERROR with an error naming the server."""
import os
import subprocess
import sys
import tempfile

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, finish, free_port, port_open, wait_for  # noqa: E402
from orthanc_peer import Orthanc  # noqa: E402

check = Checks()
tmp = tempfile.mkdtemp(prefix="junction-orthanc-lookup-")
procs = []
orthanc = Orthanc(workdir=os.path.join(tmp, "orthanc")).start()
try:
    study = orthanc.upload(os.path.join(SRC, "samples", "dicom", "ct_small.dcm"))["ParentStudy"]
    uid = orthanc.get(f"/studies/{study}")["MainDicomTags"]["StudyInstanceUID"]
    port = free_port()
    os.makedirs(f"{tmp}/channels")
    with open(f"{tmp}/junction.yaml", "w") as f:
        f.write(f"""store: {{ path: var/junction.db }}
admin: {{ port: 0 }}
orthanc:
  main: {{ url: "{orthanc.url}", username: {orthanc.user}, password: {orthanc.password}, timeout: 5s }}
  stale: {{ url: "{orthanc.url}", username: {orthanc.user}, password: not-the-password }}
""")
    with open(f"{tmp}/channels/lookup.yaml", "w") as f:
        f.write(f"""channel: lookup
source: {{ type: mllp, port: {port}, host: 127.0.0.1 }}
script: lookup.lua
transform: with_study
destinations:
  - {{ name: out, type: file, directory: out, filename: "${{MSH-10}}.hl7" }}
""")
    with open(f"{tmp}/lookup.lua", "w") as f:
        f.write("""
function with_study(msg)
  local studies = orthanc.server("main").find{Level = "Study", Query = {PatientID = msg:get("PID-3.1")}, Expand = true}
  if #studies == 0 then error("no study in Orthanc for patient " .. msg:get("PID-3.1")) end
  msg:set("ZDS-1.1", studies[1].MainDicomTags.StudyInstanceUID)
  msg:set("ZDS-1.2", studies[1].ID)
end
""")
    sample = open(os.path.join(SRC, "samples", "hl7", "orm_o01_nw.hl7")).read().replace("MRN482913", "1CT1")
    for name in ("first", "second"):
        with open(f"{tmp}/{name}.hl7", "w") as f:
            f.write(sample.replace("|ORM0001|", f"|{name.upper()}|"))
    log_path = f"{tmp}/junction.log"
    engine = subprocess.Popen([BIN, "run"], cwd=tmp, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    procs.append(engine)
    check(wait_for(lambda: port_open(port), 15), "the engine listens")
    log = lambda: open(log_path).read()  # noqa: E731
    check(wait_for(lambda: f"orthanc server 'main' ({orthanc.url}): reachable" in log(), 10),
          f"the server 'main' is checked at start:\n{log()}")
    check(wait_for(lambda: "orthanc server 'stale'" in log() and "wrong username or password" in log(), 10),
          "a wrong password is logged, naming the server")

    send = lambda name: subprocess.run([BIN, "hl7", "send", f"127.0.0.1:{port}", f"{tmp}/{name}.hl7"],  # noqa: E731
                                       capture_output=True, text=True)
    r = send("first")
    check(r.returncode == 0 and "AA" in r.stdout, f"the order is accepted: {r.stdout}{r.stderr}")
    out = f"{tmp}/out/FIRST.hl7"
    check(wait_for(lambda: os.path.exists(out), 10), "and written out")
    text = open(out).read() if os.path.exists(out) else ""
    check(f"ZDS|{uid}^{study}" in text, f"with the study found in Orthanc: {text[-200:]}")

    orthanc.stop()
    r = send("second")
    check(r.returncode == 0, f"with Orthanc gone the order is still taken (stored): {r.stdout}{r.stderr}")
    errors = lambda: subprocess.run([BIN, "messages", "--config", f"{tmp}/junction.yaml", "--channel", "lookup",  # noqa: E731
                                     "--status", "ERROR"], capture_output=True, text=True).stdout
    # (the engine moves what its journal acknowledged into SQLite moments later)
    check(wait_for(lambda: "SECOND" in errors(), 10) and "orthanc server 'main'" in errors()
          and "connection refused" in errors(),
          f"and kept as ERROR with an error naming the server: {errors()}")
    check(engine.poll() is None, "the engine goes on")
finally:
    orthanc.stop()
    finish(procs, check, tmp)
check.exit()
