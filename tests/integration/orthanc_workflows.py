"""The shipped Orthanc workflows end to end, against a real Orthanc, a
recording OpenMRS and a recording EMR:

- orthanc-study-completed: a study of a worklist item (ordered over MLLP by
  ris-worklist) becomes stable in Orthanc; the item is COMPLETED (it leaves the
  MWL findscu queries) and the RIS gets an ORM^O01 with ORC-5 CM and ZDS-1;
- orthanc-openmrs-attachment: the study's first image preview is attached to
  the OpenMRS patient found by its MRN, as multipart/form-data with the parts
  patient, fileCaption, file; OpenMRS answers 500 once (retried); the study
  becomes stable a second time, and Junction is restarted: still exactly one
  attachment;
- openmrs-study-status: OpenMRS is told the step (PerformedProcedureStepID)
  was performed, with no body;
- orthanc-emr-sync: the patient and the study are upserted into the EMR, the
  study linked to its patient by MRN; the EMR fails once (retried)."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import pydicom
from pydicom.uid import generate_uid

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
SAMPLE = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, engine_dir, finish, free_port, port_open, stop, wait_for  # noqa: E402
from openmrs_peer import BASE, OpenMRS  # noqa: E402
from orthanc_peer import Orthanc  # noqa: E402
from recording_http import RecordingServer  # noqa: E402
from mwl_query import findscu as query  # noqa: E402
from shipped import shipped  # noqa: E402

check = Checks()
ACC, UID, MRN = "ACC20261123001", "1.2.826.0.1.3680043.10.1001.20261123.1", "MRN482913"
PATIENT_UUID = "8d9a5f3e-2f4b-4c67-9e1d-6a0b1c2d3e4f"


def instance(path, number, step=None):
    ds = pydicom.dcmread(SAMPLE)
    ds.PatientID, ds.PatientName, ds.AccessionNumber, ds.StudyInstanceUID = MRN, "DOE^JANE^MARIE^MRS", ACC, UID
    ds.SeriesInstanceUID = UID + ".1"
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = number
    if step:
        ds.PerformedProcedureStepID = step
    ds.save_as(path)
    return path


def findscu(port, out):
    return query(check, port, ["AccessionNumber", "ScheduledProcedureStepSequence[0].Modality"], out)


base = tempfile.mkdtemp(prefix="junction-orthanc-workflows-")
orthanc = Orthanc(workdir=os.path.join(base, "orthanc"), stable_age=1).start()
openmrs = OpenMRS().start()
openmrs.patients = {MRN: PATIENT_UUID}
openmrs.fail_next[f"{BASE}/attachment"] = [500]
emr = RecordingServer({("PUT", "/api/patients/*"): [(503, "busy"), (200, {})],
                       ("PUT", "/api/studies/*"): (200, {})}).start()
hl7_port, mwl_port = free_port(), free_port()
openmrs_auth = f"{{ type: basic, username: {openmrs.user}, password: {openmrs.password} }}"
fast_retry = ("backoff: 10s", "backoff: 200ms")
channels = {
    "ris-worklist": shipped("ris-worklist", port=hl7_port),
    "modality-worklist": shipped("modality-worklist", port=mwl_port),
    "orthanc-study-completed": shipped("orthanc-study-completed"),
    "orthanc-openmrs-attachment": shipped(
        "orthanc-openmrs-attachment",
        vars={"openmrs_url": openmrs.base, "openmrs_user": openmrs.user, "openmrs_password": openmrs.password,
              "viewer_url": orthanc.url + "/app/explorer.html#study?uuid={id}"},
        replace=[("url: http://127.0.0.1:8080/openmrs", f"url: {openmrs.base}"),
                 ("auth: { type: basic, username: orthanc, password: change-me }", f"auth: {openmrs_auth}"),
                 fast_retry]),
    "openmrs-study-status": shipped(
        "openmrs-study-status",
        replace=[("http://127.0.0.1:8080/openmrs", openmrs.base),
                 ("auth: { type: basic, username: orthanc, password: change-me }", f"auth: {openmrs_auth}"),
                 fast_retry]),
    "orthanc-emr-sync": shipped(
        "orthanc-emr-sync",
        replace=[("http://127.0.0.1:8000", emr.url), ("http://127.0.0.1:8000", emr.url),
                 ("poll_interval: 15m", "poll_interval: 1s"), ("backoff: 10s", "backoff: 200ms"),
                 ("backoff: 10s", "backoff: 200ms")]),
}
tmp = engine_dir("junction-workflows-", channels, store=f"""store: {{ path: var/junction.db, sync: normal }}
orthanc:
  main: {{ url: "{orthanc.url}", username: {orthanc.user}, password: {orthanc.password}, timeout: 10s }}""")
procs = []


def filtered(channel):
    r = subprocess.run([BIN, "messages", "--channel", channel, "--counts"], cwd=tmp, capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.split()[:1] == ["FILTERED"]:
            return int(line.split()[1])
    return 0


def start():
    log = open(f"{tmp}/junction.log", "a")
    p = subprocess.Popen([BIN, "run"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    check(wait_for(lambda: port_open(hl7_port) and port_open(mwl_port), 20), "the engine listens")
    return p


try:
    engine = start()
    # The RIS orders the study: a worklist item.
    r = subprocess.run([BIN, "hl7", "send", f"127.0.0.1:{hl7_port}", f"{SRC}/samples/hl7/orm_o01_nw.hl7"],
                       capture_output=True, text=True)
    check(r.returncode == 0 and "MSA|AA" in r.stdout, f"order acknowledged: {r.stdout} {r.stderr}")
    check(wait_for(lambda: len(findscu(mwl_port, f"{tmp}/f0")) == 1, 15), "the order is on the worklist")

    # The modality's images reach Orthanc; the study becomes stable.
    study = orthanc.upload(instance(f"{tmp}/i1.dcm", 1, step="SPS-77"))["ParentStudy"]
    orthanc.upload(instance(f"{tmp}/i2.dcm", 2))
    check(orthanc.wait_stable(study), "the study is stable in Orthanc")

    # 1. The worklist item is completed; the RIS gets ORM^O01 CM with the study UID.
    def ris_files():
        return sorted(glob.glob(f"{tmp}/var/out/ris-status/{ACC}-CM-*.hl7"))
    check(wait_for(lambda: len(ris_files()) == 1, 30), f"one status update for the RIS: {ris_files()}")
    if ris_files():
        segs = {l.split("|")[0]: l.split("|") for l in open(ris_files()[0], newline="").read().split("\r") if l}
        check(segs["MSH"][8] == "ORM^O01" and segs["ORC"][1] == "SC" and segs["ORC"][5] == "CM", f"ORC: {segs.get('ORC')}")
        check(segs["OBR"][18] == ACC and segs["ZDS"][1].split("^")[0] == UID, f"OBR-18/ZDS-1: {segs.get('ZDS')}")
        check(segs["PID"][3].split("^")[0] == MRN, "PID-3")
    check(findscu(mwl_port, f"{tmp}/f1") == [], "the completed item has left the worklist")

    # 2. One attachment in OpenMRS, after a 500 retried.
    check(wait_for(lambda: len(openmrs.attachments) == 1, 30), f"one attachment: {openmrs.attachments}")
    posts = openmrs.received("POST", f"{BASE}/attachment")
    check(len(posts) == 2, f"the 500 was retried once: {len(posts)} POSTs")
    lookups = openmrs.received("GET", f"{BASE}/patient")
    check(lookups and lookups[0].query == {"identifier": [MRN]}, f"patient looked up by MRN: {lookups}")
    check(all(openmrs.authorized(r) for r in posts + lookups), "every call with the service account")
    if openmrs.attachments:
        patient, caption, filename, ctype, data = openmrs.attachments[0]
        check(patient == PATIENT_UUID, f"the patient's uuid: {patient}")
        check(caption == f"{orthanc.url}/app/explorer.html#study?uuid={study}", f"caption: {caption}")
        check(filename == "preview.png" and ctype == "image/png" and data.startswith(b"\x89PNG"), "a PNG file")
        check(posts[-1].headers["content-type"].startswith("multipart/form-data; boundary="), "multipart/form-data")
        check(list(posts[-1].multipart()) == ["patient", "fileCaption", "file"], "exactly the three parts")

    # 3. OpenMRS is told the step was performed, with no body.
    check(wait_for(lambda: openmrs.status_updates == [(UID, "SPS-77")], 30), f"status: {openmrs.status_updates}")
    ups = openmrs.received("POST", f"{BASE}/worklist/updaterequeststatus")
    check(ups and ups[0].body == b"", f"no body: {ups and ups[0].body}")

    # 4. The EMR gets the patient (after one 503) and the study, linked by MRN.
    check(wait_for(lambda: len(emr.received("PUT", f"/api/studies/{UID}")) >= 1 and
                   len(emr.received("PUT", f"/api/patients/{MRN}")) >= 2, 30), "the EMR is upserted")
    s = emr.received("PUT", f"/api/studies/{UID}")
    if s:
        body = s[0].json()
        check(body["mrn"] == MRN and body["accession"] == ACC and body["uid"] == UID, f"study: {body}")
        check(body["modalities"] == ["CT"] and body["series"] == 1, f"series: {body}")
        check(body["orthanc"] == {"server": "main", "id": study}, f"orthanc link: {body}")
    p = emr.received("PUT", f"/api/patients/{MRN}")
    if p:
        check(p[-1].json()["mrn"] == MRN and p[-1].json()["name"] == "DOE^JANE^MARIE^MRS", f"patient: {p[-1].json()}")

    # The study becomes stable again (a late image), and the engine restarts: nothing is sent twice.
    orthanc.upload(instance(f"{tmp}/i3.dcm", 3))
    check(orthanc.wait_stable(study), "stable again")
    changes = orthanc.changes(0, 1000)["Changes"]
    stable = [c for c in changes if c["ChangeType"] == "StableStudy"]
    check(len(stable) == 2, f"Orthanc reported the study stable twice: {len(stable)}")
    check(wait_for(lambda: filtered("orthanc-openmrs-attachment") == 1, 30), "the second stable event is filtered")
    stop([engine])
    engine = start()
    orthanc.upload(instance(f"{tmp}/i4.dcm", 4))
    check(orthanc.wait_stable(study), "stable a third time")
    check(wait_for(lambda: filtered("orthanc-openmrs-attachment") == 2 and filtered("orthanc-study-completed") == 2, 30),
          "the third stable event is filtered too, after the restart")
    check(len(openmrs.attachments) == 1, f"still one attachment: {len(openmrs.attachments)}")
    check(len(ris_files()) == 1, f"still one status update for the RIS: {ris_files()}")
finally:
    finish(procs, check, tmp)
    orthanc.stop()
    openmrs.stop()
    emr.stop()
    shutil.rmtree(base, ignore_errors=True)

check.exit()
