#!/usr/bin/python3
"""Generates the same N scheduled procedure steps two ways, for the MWL benchmark:
ORM^O01 messages (one .hl7 file each, for Junction's ris-worklist mapping over
MLLP) and DICOM worklist files (.wl, for DCMTK's wlmscpfs).

usage: mwl_items.py COUNT HL7_DIR WL_DIR
Item i: PatientID P<i>, PatientName <FAMILY>^<GIVEN> from fixed lists,
AccessionNumber A<i>, RequestedProcedureID RP<i>, modality from a fixed cycle,
start date 2026-12-01 + (i % 30) days at 08:00 + (i % 40) * 15 min,. Both outputs carry the same values, so the same query gets
the same matches from both servers."""
import os
import sys

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

FAMILIES = ["SMITH", "JONES", "GARCIA", "MILLER", "DAVIS", "MARTIN", "LOPEZ", "WILSON", "MOORE", "TAYLOR",
            "ANDERSON", "THOMAS", "JACKSON", "WHITE", "HARRIS", "CLARK", "LEWIS", "ROBINSON", "WALKER", "YOUNG"]
GIVENS = ["ANNA", "JOHN", "MARIA", "PETER", "LINDA", "PAUL", "SARAH", "MARK", "JULIA", "DAVID", "EMMA"]
MODALITIES = ["CT", "MR", "US", "CR", "DX", "MG", "NM"]


def item(i):
    day = 1 + i % 30
    minutes = 8 * 60 + (i % 40) * 15
    return {
        "pid": "P%06d" % i,
        "family": FAMILIES[i % len(FAMILIES)],
        "given": GIVENS[(i // len(FAMILIES)) % len(GIVENS)],
        "birth": "19%02d%02d%02d" % (40 + i % 60, 1 + i % 12, 1 + i % 28),
        "sex": "MF"[i % 2],
        "acc": "A%07d" % i,
        "rp": "RP%07d" % i,
        "sps": "SPS%07d" % i,
        "modality": MODALITIES[i % len(MODALITIES)],
        "date": "202612%02d" % day,
        "time": "%02d%02d00" % (minutes // 60, minutes % 60),
        "uid": "1.2.826.0.1.3680043.10.1001.9.%d" % i,
        "code": "PROC%d" % (i % 50),
        "desc": "Procedure %d" % (i % 50),
    }


def hl7(it, i):
    return "\r".join([
        "MSH|^~\\&|RIS|BENCH|JUNCTION|RADIOLOGY|20261123080000||ORM^O01|MWL%07d|P|2.3.1" % i,
        "PID|1||%s^^^BENCH^MR||%s^%s||%s|%s" % (it["pid"], it["family"], it["given"], it["birth"], it["sex"]),
        "PV1|1|O|RAD",
        "ORC|NW|ORD%07d|%s||SC" % (i, it["acc"]),
        "OBR|1|ORD%07d|%s|%s^%s^L||||||||||||||%s|%s|%s||||%s|||^^^%s%s" % (
            i, it["acc"], it["code"], it["desc"], it["acc"], it["rp"], it["sps"], it["modality"], it["date"],
            it["time"]),
        "ZDS|%s^JUNCTION^Application^DICOM" % it["uid"],
    ]) + "\r"


def worklist_file(it, path):
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientID = it["pid"]
    ds.IssuerOfPatientID = "BENCH"
    ds.PatientName = "%s^%s" % (it["family"], it["given"])
    ds.PatientBirthDate = it["birth"]
    ds.PatientSex = it["sex"]
    ds.AccessionNumber = it["acc"]
    ds.RequestedProcedureID = it["rp"]
    ds.RequestedProcedureDescription = it["desc"]
    ds.StudyInstanceUID = it["uid"]
    ds.ReferringPhysicianName = ""
    code = Dataset()
    code.CodeValue = it["code"]
    code.CodingSchemeDesignator = "L"
    code.CodeMeaning = it["desc"]
    ds.RequestedProcedureCodeSequence = Sequence([code])
    sps = Dataset()
    sps.Modality = it["modality"]
    sps.ScheduledStationAETitle = ""  # ORM^O01 has no field for it (OMI^O23 has IPC-9)
    sps.ScheduledProcedureStepStartDate = it["date"]
    sps.ScheduledProcedureStepStartTime = it["time"]
    sps.ScheduledProcedureStepID = it["sps"]
    sps.ScheduledProcedureStepDescription = it["desc"]
    sps.ScheduledPerformingPhysicianName = ""
    ds.ScheduledProcedureStepSequence = Sequence([sps])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.276.0.7230010.3.1.0.1"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.10.1001.8.%d" % int(it["pid"][1:])
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.save_as(path, write_like_original=False)


def main():
    count, hl7_dir, wl_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.makedirs(hl7_dir, exist_ok=True)
    os.makedirs(wl_dir, exist_ok=True)
    open(os.path.join(wl_dir, "lockfile"), "w").close()  # wlmscpfs locks the AE folder through it
    for i in range(count):
        it = item(i)
        with open(os.path.join(hl7_dir, "%07d.hl7" % i), "w", newline="") as f:
            f.write(hl7(it, i))
        worklist_file(it, os.path.join(wl_dir, "%07d.wl" % i))


if __name__ == "__main__":
    main()
