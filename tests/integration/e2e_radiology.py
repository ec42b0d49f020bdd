"""The radiology workflow end to end, with the shipped channels and real peers:
an ORM^O01 arrives over MLLP (ris-worklist), DCMTK's findscu finds its worklist
item (modality-worklist), storescu stores an image of it (modality-images), an
independent client (dcmjs-dimse) reports MPPS IN PROGRESS then COMPLETED, and
the worklist item leaves the worklist while the RIS gets an ORM^O01 status
update (ORC-5 CM) built by transforms/mpps_to_ris.lua."""
import glob
import json
import os
import sys
import subprocess
import tempfile

import pydicom

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
SAMPLE = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, finish, free_port, port_open, wait_for  # noqa: E402
from mwl_query import findscu as query  # noqa: E402
from shipped import shipped  # noqa: E402

check = Checks()


def findscu(port, keys, out):
    return query(check, port, keys, out)


tmp = tempfile.mkdtemp(prefix="junction-e2e-")
proc = None
try:
    hl7_port, mwl_port, store_port = free_port(), free_port(), free_port()
    os.makedirs(f"{tmp}/channels")
    with open(f"{tmp}/junction.yaml", "w") as f:
        f.write("store: { path: var/junction.db, sync: normal }\nadmin: { port: 0 }\n")
    for name, port in (("ris-worklist", hl7_port), ("modality-worklist", mwl_port), ("modality-images", store_port)):
        with open(f"{tmp}/channels/{name}.yaml", "w") as f:
            f.write(shipped(name, port))
    log = open(f"{tmp}/run.log", "w")
    proc = subprocess.Popen([BIN, "run"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    check(wait_for(lambda: all(port_open(p) for p in (hl7_port, mwl_port, store_port))), "the three channels listen")

    # 1. The RIS order arrives over MLLP.
    r = subprocess.run([BIN, "hl7", "send", f"127.0.0.1:{hl7_port}", f"{SRC}/samples/hl7/orm_o01_nw.hl7"],
                       capture_output=True, text=True)
    check(r.returncode == 0 and "MSA|AA" in r.stdout, f"order acknowledged: {r.stdout} {r.stderr}")

    # 2. The modality queries its worklist (the seed's query by modality).
    keys = ["ScheduledProcedureStepSequence[0].Modality=CT", "PatientID", "PatientName", "AccessionNumber",
            "StudyInstanceUID", "RequestedProcedureID",
            "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate"]
    items = []
    wait_for(lambda: len(items.__setitem__(slice(None), findscu(mwl_port, keys, f"{tmp}/find1")) or items) == 1, 15)
    check(len(items) == 1, f"one worklist item for CT, got {len(items)}")
    if items:
        it = items[0]
        check(it.PatientID == "MRN482913", f"PatientID {it.PatientID}")
        check(str(it.PatientName) == "DOE^JANE^MARIE^MRS", f"PatientName {it.PatientName}")
        check(it.AccessionNumber == "ACC20261123001", f"AccessionNumber {it.AccessionNumber}")
        check(it.RequestedProcedureID == "RP77881201", f"RequestedProcedureID {it.RequestedProcedureID}")
        check(it.StudyInstanceUID == "1.2.826.0.1.3680043.10.1001.20261123.1", f"StudyInstanceUID {it.StudyInstanceUID}")
        check(it.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate == "20261123", "SPS start date")
        check(not hasattr(it, "ReferringPhysicianName"), "only the requested keys come back")
    study = "1.2.826.0.1.3680043.10.1001.20261123.1"

    # 3. The modality stores an image of that study.
    ds = pydicom.dcmread(SAMPLE)
    ds.PatientID = "MRN482913"
    ds.PatientName = "DOE^JANE^MARIE^MRS"
    ds.AccessionNumber = "ACC20261123001"
    ds.StudyInstanceUID = study
    image = f"{tmp}/image.dcm"
    ds.save_as(image)
    r = subprocess.run(["storescu", "-aec", "JUNCTION", "-aet", "CT1", "127.0.0.1", str(store_port), image],
                       capture_output=True, text=True, env=dict(os.environ, TCP_NODELAY="1"))
    check(r.returncode == 0, f"storescu: {r.stderr[-500:]}")
    # Answered once safely on disk (respond_after: file); filed under its study just after.
    filed = lambda: glob.glob(f"{tmp}/var/dicom/{study}/*/{ds.SOPInstanceUID}.dcm")  # noqa: E731
    wait_for(lambda: len(filed()) == 1, 10)
    stored = filed()
    check(len(stored) == 1, f"the instance is kept under its study: {stored}")
    if stored:
        kept = pydicom.dcmread(stored[0])
        check(kept.PixelData == ds.PixelData, "pixel data as sent")
        check(kept.SOPInstanceUID == ds.SOPInstanceUID and kept.PatientID == "MRN482913", "the instance as sent")

    # 4. MPPS IN PROGRESS then COMPLETED from an independent client.
    r = subprocess.run(["node", f"{SRC}/tests/node/mwl_client.js", "127.0.0.1", str(mwl_port), "JUNCTION", "CT1",
                        "MRN482913", "ACC20261123001", study], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"dcmjs-dimse MPPS client: {r.stdout} {r.stderr}")
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]  # the client's result line
    out = json.loads(lines[-1]) if lines else {}
    check(out.get("createStatus") == 0 and out.get("setStatus") == 0, f"N-CREATE / N-SET succeeded: {out}")

    # 5. The RIS gets the status update, and the item leaves the worklist.
    def status_files():
        return sorted(glob.glob(f"{tmp}/var/out/ris-status/ACC20261123001-*.hl7"))
    check(wait_for(lambda: len(status_files()) == 2), f"two status updates for the RIS: {status_files()}")
    def segments(text):
        return {line.split("|")[0]: line.split("|") for line in text.split("\r") if line}
    updates = [segments(open(p, newline="").read()) for p in status_files()]
    by_status = {u["ORC"][5]: u for u in updates if "ORC" in u}
    check(sorted(by_status) == ["CM", "IP"], f"one update IN PROGRESS (IP), one COMPLETED (CM): {updates}")
    cm = by_status.get("CM")
    if cm:
        check(cm["MSH"][8] == "ORM^O01", f"ORM^O01: {cm['MSH'][8]}")
        check(cm["ORC"][1] == "SC" and cm["ORC"][3] == "ACC20261123001", f"ORC: {cm['ORC']}")
        check(cm["PID"][3].split("^")[0] == "MRN482913", f"PID-3: {cm['PID'][3]}")
        check(cm["OBR"][18] == "ACC20261123001", f"OBR-18: {cm['OBR'][18]}")
        check(cm["OBR"][22] == "20260101103000", f"OBR-22 (end of the step): {cm['OBR'][22]}")
        check(cm["ZDS"][1].split("^")[0] == study, f"ZDS-1: {cm['ZDS'][1]}")
    check(findscu(mwl_port, keys, f"{tmp}/find2") == [], "a completed item is no longer on the worklist")
finally:
    finish([proc] if proc else [], check, tmp, "run.log", timeout=30)

check.exit()
