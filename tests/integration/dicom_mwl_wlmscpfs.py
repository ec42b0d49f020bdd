"""The dicom_mwl source against DCMTK's wlmscpfs, attribute by attribute: the
same worklist items go into Junction's worklist (keyword JSON through a
worklist destination) and into wlmscpfs (as .wl files in its data folder), the
same findscu queries go to both (return keys with and without values, specific
and universal Scheduled Procedure Step matching, sequences an item lacks), and
the answers must agree: the same items, and in each the same attributes with
the same values. The differences that are legitimate are listed in ACCEPTED
with their reason; every other one fails, and so does a listed one no query
shows any more. The dicom_mwl source listens on 127.0.0.1 only (host)."""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

BIN = os.environ["JUNCTION_BIN"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, finish, free_port, port_open, wait_for  # noqa: E402

check = Checks()

AE = "MWLDIFF"
SPS = "ScheduledProcedureStepSequence"

# The worklist, as keyword tables (what a Lua transform hands the worklist
# destination). Each item is complete for wlmscpfs, which skips items without
# the type 1 return keys of PS3.4 K.6.1.
ITEMS = [
    {  # no code sequence, no referenced study
        "PatientID": "DIFF001", "PatientName": "DOE^JOHN", "PatientBirthDate": "19700101", "PatientSex": "M",
        "AccessionNumber": "DACC001", "RequestedProcedureID": "DRP001", "RequestedProcedureDescription": "CT HEAD",
        "StudyInstanceUID": "1.2.826.0.1.3680043.10.1001.77.1", "ReferringPhysicianName": "WELBY^MARCUS",
        SPS: [{"Modality": "CT", "ScheduledStationAETitle": "CT01", "ScheduledProcedureStepStartDate": "20261201",
               "ScheduledProcedureStepStartTime": "090000", "ScheduledProcedureStepID": "DSPS001",
               "ScheduledProcedureStepDescription": "CT HEAD PLAIN"}],
    },
    {  # codes, a referenced study, and more of the step's attributes
        "PatientID": "DIFF002", "PatientName": "ROE^JANE", "PatientBirthDate": "19800202", "PatientSex": "F",
        "AccessionNumber": "DACC002", "RequestedProcedureID": "DRP002", "RequestedProcedureDescription": "MR KNEE",
        "StudyInstanceUID": "1.2.826.0.1.3680043.10.1001.77.2", "RequestedProcedurePriority": "ROUTINE",
        "RequestedProcedureCodeSequence": [
            {"CodeValue": "MRKNEE", "CodingSchemeDesignator": "L", "CodeMeaning": "MR KNEE"}],
        "ReferencedStudySequence": [
            {"ReferencedSOPClassUID": "1.2.840.10008.3.1.2.3.1",
             "ReferencedSOPInstanceUID": "1.2.826.0.1.3680043.10.1001.77.12"}],
        SPS: [{"Modality": "MR", "ScheduledStationAETitle": "MR01", "ScheduledStationName": "MR ROOM 1",
               "ScheduledProcedureStepLocation": "BUILDING A", "ScheduledPerformingPhysicianName": "HOUSE^GREGORY",
               "ScheduledProcedureStepStartDate": "20261202", "ScheduledProcedureStepStartTime": "143000",
               "ScheduledProcedureStepID": "DSPS002", "ScheduledProcedureStepDescription": "MR KNEE LEFT",
               "ScheduledProtocolCodeSequence": [
                   {"CodeValue": "P-KNEE", "CodingSchemeDesignator": "L", "CodeMeaning": "KNEE PROTOCOL"}]}],
    },
    {
        "PatientID": "DIFF003", "PatientName": "SMITH^ANNA", "PatientBirthDate": "19900303", "PatientSex": "F",
        "AccessionNumber": "DACC003", "RequestedProcedureID": "DRP003", "RequestedProcedureDescription": "CT CHEST",
        "StudyInstanceUID": "1.2.826.0.1.3680043.10.1001.77.3",
        SPS: [{"Modality": "CT", "ScheduledStationAETitle": "CT02", "ScheduledProcedureStepStartDate": "20261203",
               "ScheduledProcedureStepStartTime": "080000", "ScheduledProcedureStepID": "DSPS003",
               "ScheduledProcedureStepDescription": "CT CHEST LOW DOSE"}],
    },
    {
        "PatientID": "DIFF004", "PatientName": "DOEBLER^KARL", "PatientSex": "O",
        "AccessionNumber": "DACC004", "RequestedProcedureID": "DRP004", "RequestedProcedureDescription": "US ABDOMEN",
        "StudyInstanceUID": "1.2.826.0.1.3680043.10.1001.77.4",
        SPS: [{"Modality": "US", "ScheduledStationAETitle": "US01", "ScheduledProcedureStepStartDate": "20261202",
               "ScheduledProcedureStepStartTime": "100000", "ScheduledProcedureStepID": "DSPS004",
               "ScheduledProcedureStepDescription": "US ABDOMEN COMPLETE"}],
    },
]

# Every query asks for AccessionNumber: the answers of the two servers are paired by it.
QUERIES = [
    ("return keys of the patient, the request and the step",
     ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "RequestedProcedureID",
      "RequestedProcedureDescription", "StudyInstanceUID", "ReferringPhysicianName", "RequestedProcedurePriority",
      f"{SPS}[0].Modality", f"{SPS}[0].ScheduledStationAETitle", f"{SPS}[0].ScheduledProcedureStepStartDate",
      f"{SPS}[0].ScheduledProcedureStepStartTime", f"{SPS}[0].ScheduledProcedureStepID",
      f"{SPS}[0].ScheduledProcedureStepDescription", f"{SPS}[0].ScheduledPerformingPhysicianName"]),
    ("scheduled modality", ["PatientID", f"{SPS}[0].Modality=CT", f"{SPS}[0].ScheduledStationAETitle"]),
    ("station and a date range", [f"{SPS}[0].ScheduledStationAETitle=MR01",
                                  f"{SPS}[0].ScheduledProcedureStepStartDate=20261201-20261202"]),
    ("a date and a time range", [f"{SPS}[0].ScheduledProcedureStepStartDate=20261202",
                                 f"{SPS}[0].ScheduledProcedureStepStartTime=0900-1200", f"{SPS}[0].Modality"]),
    ("patient name with a wildcard", ["PatientName=DOE*", "PatientID"]),
    ("universal step matching: an empty sequence", ["PatientID", SPS]),
    ("universal step matching: one empty item", ["PatientID", f"{SPS}[0]"]),
    ("universal step matching for one patient", ["PatientID=DIFF002", f"{SPS}[0]"]),
    ("referenced study, both UIDs", ["ReferencedStudySequence[0].ReferencedSOPClassUID",
                                     "ReferencedStudySequence[0].ReferencedSOPInstanceUID"]),
    ("referenced study, one UID", ["ReferencedStudySequence[0].ReferencedSOPInstanceUID"]),
    ("referenced patient, universal", ["ReferencedPatientSequence"]),
    ("requested procedure code", ["RequestedProcedureDescription", "RequestedProcedureCodeSequence[0].CodeValue",
                                  "RequestedProcedureCodeSequence[0].CodingSchemeDesignator",
                                  "RequestedProcedureCodeSequence[0].CodeMeaning"]),
    ("requested procedure code, universal", ["RequestedProcedureCodeSequence"]),
    ("protocol code in the step", [f"{SPS}[0].Modality", f"{SPS}[0].ScheduledProtocolCodeSequence[0].CodeValue",
                                   f"{SPS}[0].ScheduledProtocolCodeSequence[0].CodingSchemeDesignator"]),
]

ABSENT = "<absent>"
NO_ITEM = "SQ(0 items)"
CODE_SEQUENCES = ("RequestedProcedureCodeSequence", f"{SPS}[0].ScheduledProtocolCodeSequence")

# Legitimate differences: (reason, test of (query, attribute path, Junction's value, wlmscpfs's value)).
ACCEPTED = [
    ("a code sequence the item lacks: wlmscpfs leaves it out of the answer (it drops a code sequence whose "
     "Code Value and Coding Scheme Designator came out empty, HandleExistentButEmptyDescriptionAndCodeSequence"
     "Attributes); Junction answers every key asked, a sequence the item lacks with no item (PS3.4 C.2.2.2.6)",
     lambda q, path, j, w: path in CODE_SEQUENCES and j == NO_ITEM and w == ABSENT),
    ("Referenced Study Sequence asked with one UID of an item without one: wlmscpfs echoes the query's item, "
     "its UID empty (it removes that item only when both UIDs were asked); Junction answers no item, as "
     "wlmscpfs does when both are asked",
     lambda q, path, j, w: q == "referenced study, one UID" and (
         (path == "ReferencedStudySequence" and j == NO_ITEM and w == "SQ(1 items)") or
         (path == "ReferencedStudySequence[0].ReferencedSOPInstanceUID" and j == ABSENT and w == ""))),
]


def dataset(table):
    """A pydicom dataset of a keyword table (lists of tables are sequences)."""
    ds = Dataset()
    for keyword, value in table.items():
        setattr(ds, keyword, Sequence([dataset(t) for t in value]) if isinstance(value, list) else value)
    return ds


def worklist_file(table, path, n):
    ds = dataset(table)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.276.0.7230010.3.1.0.1"
    ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.10.1001.78.{n}"
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.save_as(path, write_like_original=False)


def flatten(ds, prefix="", out=None):
    """{attribute path: value}; a sequence is "SQ(n items)" and its items' attributes follow as path[i].keyword."""
    out = {} if out is None else out
    for elem in ds:
        name = prefix + (elem.keyword or str(elem.tag))
        if elem.VR == "SQ":
            out[name] = f"SQ({len(elem.value)} items)"
            for i, item in enumerate(elem.value):
                flatten(item, f"{name}[{i}].", out)
        elif elem.value is None or elem.value == "":
            out[name] = ""
        elif isinstance(elem.value, (list, pydicom.multival.MultiValue)):
            out[name] = "\\".join(str(v) for v in elem.value)
        else:
            out[name] = str(elem.value).rstrip(" \0")
    return out


def find(port, keys, out):
    """findscu -W with the keys; {AccessionNumber: flattened answer}, or None when findscu failed."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    args = ["findscu", "-W", "-aet", "MODALITY", "-aec", AE, "-X", "-od", out]
    for k in ["AccessionNumber"] + keys:
        args += ["-k", k]
    r = subprocess.run(args + ["127.0.0.1", str(port)], capture_output=True, text=True)
    if not check(r.returncode == 0, f"findscu {keys} on port {port}: {r.stderr[-400:]}"):
        return None
    answers = {}
    for f in sorted(glob.glob(f"{out}/*")):
        flat = flatten(pydicom.dcmread(f))
        answers[flat.get("AccessionNumber", "?")] = flat
    return answers


def listening(port):
    """The IPv4 addresses listening on `port`, from /proc/net/tcp."""
    found = []
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            address, hexport = fields[1].split(":")
            if fields[3] == "0A" and int(hexport, 16) == port:
                found.append(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


tmp = tempfile.mkdtemp(prefix="junction-mwl-wlmscpfs-")
procs = []
try:
    jport, wport = free_port(), free_port()
    # wlmscpfs: one folder per called AE title, a lock file in it, one .wl file per item.
    os.makedirs(f"{tmp}/wl/{AE}")
    open(f"{tmp}/wl/{AE}/lockfile", "w").close()
    for n, table in enumerate(ITEMS):
        worklist_file(table, f"{tmp}/wl/{AE}/item{n}.wl", n)
    # Junction: the same tables through a worklist destination.
    os.makedirs(f"{tmp}/channels")
    os.makedirs(f"{tmp}/in")
    with open(f"{tmp}/junction.yaml", "w") as f:
        f.write("store: { path: var/junction.db, sync: normal }\nadmin: { port: 0 }\n")
    with open(f"{tmp}/channels/load.yaml", "w") as f:
        f.write("channel: load\nsource: { type: file, directory: in, data_type: json, poll_interval: 100ms }\n"
                "destinations:\n  - { name: worklist, type: worklist }\n")
    with open(f"{tmp}/channels/mwl.yaml", "w") as f:
        f.write(f"channel: mwl\nsource: {{ type: dicom_mwl, host: 127.0.0.1, port: {jport}, ae_title: {AE} }}\n"
                "destinations: []\n")
    with open(f"{tmp}/in/items.json", "w") as f:
        json.dump(ITEMS, f)
    log = open(f"{tmp}/junction.log", "w")
    procs.append(subprocess.Popen([BIN, "run"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT))
    procs.append(subprocess.Popen(["wlmscpfs", "-s", "-dhl", "-dfp", f"{tmp}/wl", str(wport)],
                                  stdout=open(f"{tmp}/wlmscpfs.log", "w"), stderr=subprocess.STDOUT))
    check(wait_for(lambda: port_open(jport) and port_open(wport), 15), "both servers listen")
    check(listening(jport) == ["127.0.0.1"], f"the dicom_mwl source listens on 127.0.0.1 only: {listening(jport)}")
    check(wait_for(lambda: len(find(jport, [], f"{tmp}/count") or {}) == len(ITEMS), 20),
          "Junction's worklist holds every item")
    check(len(find(wport, [], f"{tmp}/count") or {}) == len(ITEMS), "wlmscpfs serves every item")

    used = set()
    for n, (name, keys) in enumerate(QUERIES):
        junction = find(jport, keys, f"{tmp}/j{n}")
        wlm = find(wport, keys, f"{tmp}/w{n}")
        if junction is None or wlm is None:
            continue
        check(sorted(junction) == sorted(wlm),
              f"{name}: the same items (Junction {sorted(junction)}, wlmscpfs {sorted(wlm)})")
        for acc in sorted(set(junction) & set(wlm)):
            j, w = junction[acc], wlm[acc]
            for path in sorted(set(j) | set(w)):
                jv, wv = j.get(path, ABSENT), w.get(path, ABSENT)
                if jv == wv:
                    continue
                why = [i for i, (_, same) in enumerate(ACCEPTED) if same(name, path, jv, wv)]
                used.update(why)
                check(why, f"{name}: {acc} {path}: Junction {jv!r}, wlmscpfs {wv!r}")
    for i, (reason, _) in enumerate(ACCEPTED):
        check(i in used, f"an accepted difference no query shows any more: {reason[:100]}")
finally:
    finish(procs, check, tmp)

check.exit()
