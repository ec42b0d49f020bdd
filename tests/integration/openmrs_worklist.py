"""The shipped OpenMRS worklist bridge (channels/openmrs-worklist.yaml) end to
end: the procedure requests an OpenMRS (a recording server answering its
documented API, with basic auth) lists become Junction's modality worklist,
which DCMTK's findscu queries (channels/modality-worklist.yaml). A request
OpenMRS stops listing is cancelled; an answer that is not JSON, or a 500, is
an ERROR message with the reason while the items stay as they were."""
import os
import subprocess
import sys


BIN = os.environ["JUNCTION_BIN"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, engine_dir, finish, free_port, port_open, wait_for  # noqa: E402
from openmrs_peer import BASE, OpenMRS  # noqa: E402
from mwl_query import findscu as query  # noqa: E402
from shipped import shipped  # noqa: E402

check = Checks()

REQUESTS = [
    {"PatientID": "OMRS-100", "PatientName": "KAMARA^AMINATA", "PatientBirthDate": "19800512", "PatientSex": "F",
     "AccessionNumber": "OMRS-ACC-1", "RequestedProcedureID": "RP-1", "RequestedProcedureDescription": "CT head",
     "StudyInstanceUID": "1.2.826.0.1.3680043.10.1001.77.1",
     "ScheduledProcedureStepSequence": [{"Modality": "CT", "ScheduledStationAETitle": "CT_AE1",
                                         "ScheduledProcedureStepStartDate": "20261207",
                                         "ScheduledProcedureStepStartTime": "101500",
                                         "ScheduledProcedureStepID": "SPS-1",
                                         "ScheduledProcedureStepDescription": "CT head"}]},
    {"PatientID": "OMRS-200", "PatientName": "OKAFOR^CHINEDU", "AccessionNumber": "OMRS-ACC-2",
     "RequestedProcedureID": "RP-2", "StudyInstanceUID": "1.2.826.0.1.3680043.10.1001.77.2",
     "ScheduledProcedureStepSequence": [{"Modality": "MR", "ScheduledStationAETitle": "MR_AE1",
                                         "ScheduledProcedureStepStartDate": "20261207",
                                         "ScheduledProcedureStepID": "SPS-2"}]},
]


def findscu(port, out):
    keys = ["PatientID", "PatientName", "AccessionNumber", "StudyInstanceUID",
            "ScheduledProcedureStepSequence[0].Modality", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID"]
    return sorted(query(check, port, keys, out), key=lambda d: d.AccessionNumber)


def messages(tmp, status):
    r = subprocess.run([BIN, "messages", "--channel", "openmrs-worklist", "--status", status, "--limit", "50"],
                       cwd=tmp, capture_output=True, text=True)
    return r.stdout.partition("\n")[2]  # without the header row


openmrs = OpenMRS().start()
openmrs.worklist = REQUESTS
mwl_port = free_port()
tmp = engine_dir("junction-openmrs-wl-", {
    "openmrs-worklist": shipped("openmrs-worklist",
                                vars={"openmrs_url": openmrs.base, "openmrs_user": openmrs.user,
                                      "openmrs_password": openmrs.password},
                                replace=[("interval: 1m", "interval: 1s")]),
    "modality-worklist": shipped("modality-worklist", port=mwl_port),
})
proc = None
try:
    log = open(f"{tmp}/junction.log", "w")
    proc = subprocess.Popen([BIN, "run"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    check(wait_for(lambda: port_open(mwl_port)), "the MWL listens")

    # 1. Every listed request is on the worklist, as OpenMRS described it.
    items = []
    wait_for(lambda: len(items.__setitem__(slice(None), findscu(mwl_port, f"{tmp}/f1")) or items) == 2, 20)
    check([i.AccessionNumber for i in items] == ["OMRS-ACC-1", "OMRS-ACC-2"], f"two items: {items}")
    if len(items) == 2:
        check(items[0].PatientID == "OMRS-100" and str(items[0].PatientName) == "KAMARA^AMINATA", "patient 1")
        check(items[0].StudyInstanceUID == "1.2.826.0.1.3680043.10.1001.77.1", "study UID as OpenMRS gave it")
        sps = items[0].ScheduledProcedureStepSequence[0]
        check(sps.Modality == "CT" and sps.ScheduledProcedureStepID == "SPS-1", f"step 1: {sps}")
        check(items[1].ScheduledProcedureStepSequence[0].Modality == "MR", "step 2")
    polls = openmrs.received("GET", f"{BASE}/worklist/requests")
    check(len(polls) >= 1 and all(openmrs.authorized(r) for r in polls), "polled with the service account")
    check(all(r.query == {} and r.body == b"" for r in polls), "a plain GET")

    # 2. A malformed answer: an ERROR run naming it; the worklist stays.
    openmrs.worklist_answer = (200, '[{"AccessionNumber": "X", ')
    check(wait_for(lambda: "not JSON" in messages(tmp, "ERROR"), 20), f"an ERROR run: {messages(tmp, 'ERROR')}")
    check(len(findscu(mwl_port, f"{tmp}/f2")) == 2, "the previous items are kept")

    # 3. OpenMRS answers 500: also an ERROR run; nothing changes.
    openmrs.worklist_answer = (500, "database down")
    check(wait_for(lambda: "answered 500" in messages(tmp, "ERROR"), 20), "a 500 is an ERROR run")
    check(len(findscu(mwl_port, f"{tmp}/f3")) == 2, "still the two items")

    # 4. The second request is no longer listed: its scheduled item is cancelled.
    openmrs.worklist_answer = None
    openmrs.worklist = REQUESTS[:1]
    left = []
    wait_for(lambda: len(left.__setitem__(slice(None), findscu(mwl_port, f"{tmp}/f4")) or left) == 1, 20)
    check([i.AccessionNumber for i in left] == ["OMRS-ACC-1"], f"only the listed request remains: {left}")

    # 5. A wrong password: 401 from OpenMRS, an ERROR run that says so.
    openmrs.password = "rotated"
    check(wait_for(lambda: "answered 401" in messages(tmp, "ERROR"), 20), "a refused account is an ERROR run")
finally:
    finish([proc] if proc else [], check, tmp)
    openmrs.stop()

check.exit()
