"""Reports archived next to their images, with the real engine and real
Orthancs (DICOMweb plugin): an ORU^R01 over MLLP becomes a Basic Text SR of
the study found by accession number (orthanc.qido) and is stored with STOW-RS
(dicomweb destination, server of junction.yaml) into that study; a PDF dropped
in a folder becomes an Encapsulated PDF stored by URL with basic auth into a
second Orthanc, retried while that one is down and sent once it is back; a
STOW-RS root that does not exist and content that is no DICOM file are errors
kept with what went wrong. Uses transforms/reports_to_archive.lua."""
import io
import json
import os
import subprocess
import sys
import tempfile

import pydicom

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, finish, free_port, port_open, wait_for  # noqa: E402
from orthanc_peer import Orthanc  # noqa: E402

ACCESSION = "ACC20261123001"


def pdf_bytes(subject, title, body):
    """A small PDF whose document information names the accession number (/Subject)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
               b"<< /Length %d >>\nstream\n%s\nendstream" % (len(body), body),
               b"<< /Title (%s) /Subject (%s) >>" % (title.encode(), subject.encode())]
    out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for i, o in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, o)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 5 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def instances_of_study(peer, study_uid, modality):
    """The instances of `modality` in the study, as pydicom datasets."""
    found = peer.post("/tools/find", {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}})
    out = []
    for iid in found:
        ds = pydicom.dcmread(io.BytesIO(peer.get(f"/instances/{iid}/file", raw=True)))
        if ds.Modality == modality:
            out.append(ds)
    return out


check = Checks()
tmp = tempfile.mkdtemp(prefix="junction-dicomweb-")
procs = []
pacs = Orthanc(workdir=os.path.join(tmp, "pacs"), name="pacs").start()
vna = Orthanc(workdir=os.path.join(tmp, "vna"), name="vna", user="archivist", password="s3cret").start()
try:
    # The ordered study in the PACS: the sample CT, as the order's patient and accession number.
    ct = pydicom.dcmread(os.path.join(SRC, "samples", "dicom", "ct_small.dcm"))
    ct.PatientID, ct.PatientName, ct.PatientBirthDate, ct.PatientSex = "MRN482913", "DOE^JANE^MARIE", "19770101", "F"
    ct.AccessionNumber = ACCESSION
    buf = io.BytesIO()
    ct.save_as(buf)
    pacs.post("/instances", buf.getvalue(), content_type="application/dicom")
    # The archive holds the study as well (a PDF's instance refers to it).
    vna.post("/instances", buf.getvalue(), content_type="application/dicom")
    study_uid = ct.StudyInstanceUID

    port = free_port()
    os.makedirs(f"{tmp}/channels")
    for d in ("pdf", "misrouted", "text"):
        os.makedirs(f"{tmp}/in/{d}")
    with open(f"{tmp}/junction.yaml", "w") as f:
        f.write(f"""store: {{ path: var/junction.db, sync: normal }}
admin: {{ port: 0 }}
orthanc:
  main: {{ url: "{pacs.url}", username: {pacs.user}, password: {pacs.password}, timeout: 10s }}
""")
    script = os.path.join(SRC, "transforms", "reports_to_archive.lua")
    retry = "retry: { attempts: 1000, backoff: 200ms, max_backoff: 1s }"
    channels = {
        "reports": f"""channel: reports
source: {{ type: mllp, port: {port}, host: 127.0.0.1 }}
script: {script}
transform: oru_to_sr
destinations:
  - {{ name: pacs, type: dicomweb, server: main, response: archived }}
""",
        "pdf-reports": f"""channel: pdf-reports
source: {{ type: file, directory: in/pdf, pattern: "*.pdf", data_type: raw, poll_interval: 200ms }}
script: {script}
transform: pdf_to_dicom
destinations:
  - name: vna
    type: dicomweb
    url: {vna.url}/dicom-web
    auth: {{ username: {vna.user}, password: {vna.password} }}
    timeout: 5s
    {retry}
""",
        "misrouted": f"""channel: misrouted
source: {{ type: file, directory: in/misrouted, data_type: raw, poll_interval: 200ms }}
script: {script}
transform: pdf_to_dicom
destinations:
  - {{ name: pacs, type: dicomweb, server: main, root: /no-dicom-web, {retry} }}
""",
        "text": """channel: text
source: { type: file, directory: in/text, data_type: raw, poll_interval: 200ms }
destinations:
  - { name: pacs, type: dicomweb, server: main }
""",
    }
    for name, text in channels.items():
        with open(f"{tmp}/channels/{name}.yaml", "w") as f:
            f.write(text)

    # Settings that cannot work are refused before anything runs, at their line.
    os.makedirs(f"{tmp}/check/channels")
    with open(f"{tmp}/check/junction.yaml", "w") as f:
        f.write("store: { path: var/junction.db }\n")
    with open(f"{tmp}/check/channels/bad.yaml", "w") as f:
        f.write("""channel: bad
source: { type: file, directory: in/text }
destinations:
  - name: both
    type: dicomweb
    server: main
    url: http://127.0.0.1:1/dicom-web
""")
    r = subprocess.run([BIN, "validate", "--config", f"{tmp}/check/junction.yaml"], capture_output=True, text=True)
    check(r.returncode != 0 and "bad.yaml:4" in r.stdout + r.stderr and "server" in r.stdout + r.stderr,
          f"server and url together are refused at their line: {r.stdout}{r.stderr}")

    log_path = f"{tmp}/junction.log"
    engine = subprocess.Popen([BIN, "run"], cwd=tmp, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    procs.append(engine)
    check(wait_for(lambda: port_open(port), 15), "the engine listens")

    def messages(channel, status=None):
        args = [BIN, "messages", "--config", f"{tmp}/junction.yaml", "--channel", channel]
        if status:
            args += ["--status", status]
        return subprocess.run(args, capture_output=True, text=True).stdout.partition("\n")[2]  # without the header row

    def show(channel, status):
        ids = [line.split()[0] for line in messages(channel, status).splitlines() if line.strip()]
        if not ids:
            return ""
        r = subprocess.run([BIN, "messages", "--config", f"{tmp}/junction.yaml", "--show", ids[-1]], capture_output=True)
        return r.stdout.decode("utf-8", "replace")

    # ---- ORU^R01 over MLLP -> Basic Text SR -> STOW-RS into the study, on the PACS
    r = subprocess.run([BIN, "hl7", "send", f"127.0.0.1:{port}", os.path.join(SRC, "samples", "hl7", "oru_r01.hl7")],
                       capture_output=True, text=True)
    check(r.returncode == 0 and "AA" in r.stdout, f"the report is accepted: {r.stdout}{r.stderr}")
    check(wait_for(lambda: instances_of_study(pacs, study_uid, "SR"), 20), "a structured report reaches the study")
    srs = instances_of_study(pacs, study_uid, "SR")
    if check(len(srs) == 1, f"one SR in the study: {len(srs)}"):
        sr = srs[0]
        check(sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.11", f"a Basic Text SR: {sr.SOPClassUID}")
        check(sr.StudyInstanceUID == study_uid and sr.AccessionNumber == ACCESSION, "in the ordered study")
        check((sr.PatientID, str(sr.PatientName), sr.PatientBirthDate, sr.PatientSex) ==
              ("MRN482913", "DOE^JANE^MARIE", "19770101", "F"), f"with the patient's attributes: {sr.PatientName}")
        check(sr.SeriesInstanceUID != ct.SeriesInstanceUID, "in a series of its own")
        text = sr.ContentSequence[-1].TextValue
        check(text.startswith("EXAMINATION: CT CHEST WITHOUT CONTRAST\r\nCLINICAL HISTORY: Cough for 3 weeks & fever")
              and "1. Right lower lobe pneumonia." in text and "1.2.826.0.1.3680043" not in text,
              f"holding the report's text: {text[:200]!r}")
        check(sr.VerificationFlag == "VERIFIED" and str(sr.VerifyingObserverSequence[0].VerifyingObserverName) ==
              "RADIOLOGIST^RITA", "verified by the principal result interpreter")
        check(sr.ContentDate == "20261123" and sr.ContentTime.startswith("120400"), "dated as the result")
    shown = show("reports", "SENT")
    check("-- destination pacs: SENT" in shown and '"00081199"' in shown,
          f"the message is SENT, the STOW-RS answer kept as its response: {shown[-600:]}")

    # ---- a PDF dropped in a folder -> Encapsulated PDF -> STOW-RS by URL, on the archive
    pdf = pdf_bytes(ACCESSION, "CT Chest report", b"BT /F1 12 Tf 72 720 Td (Right lower lobe pneumonia.) Tj ET")
    with open(f"{tmp}/in/pdf/report-1.pdf", "wb") as f:
        f.write(pdf)
    check(wait_for(lambda: instances_of_study(vna, study_uid, "DOC"), 20), "the PDF reaches the archive")
    docs = instances_of_study(vna, study_uid, "DOC")
    if check(len(docs) == 1, f"one document: {len(docs)}"):
        doc = docs[0]
        check(doc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1", "an Encapsulated PDF")
        check(doc.EncapsulatedDocument[:len(pdf)] == pdf and doc.EncapsulatedDocumentLength == len(pdf),
              "holding the PDF's bytes as they were")
        check(doc.DocumentTitle == "CT Chest report" and doc.MIMETypeOfEncapsulatedDocument == "application/pdf",
              "titled from the PDF")
        check(doc.PatientID == "MRN482913" and doc.AccessionNumber == ACCESSION, "with the study's attributes")

    # The archive down: the delivery is retried, then sent once it is back.
    vna.stop()
    with open(f"{tmp}/in/pdf/report-2.pdf", "wb") as f:
        f.write(pdf_bytes(ACCESSION, "Addendum", b"BT (Addendum) Tj ET"))

    def attempts():
        shown = show("pdf-reports", "QUEUED")
        for line in shown.splitlines():
            if line.startswith("-- destination vna:"):
                return int(line.split(",")[1].split()[0])
        return 0
    check(wait_for(lambda: attempts() >= 3, 30), f"tried again while the archive is down: {show('pdf-reports', 'QUEUED')[-400:]}")
    check("connection refused" in show("pdf-reports", "QUEUED"), "the error says why")
    vna.start()
    check(wait_for(lambda: len(instances_of_study(vna, study_uid, "DOC")) == 2, 30), "and stored once it is back")
    check(wait_for(lambda: "QUEUED" not in messages("pdf-reports") and messages("pdf-reports").count("SENT") == 2, 10),
          f"both PDFs SENT: {messages('pdf-reports')}")

    # ---- a STOW-RS root that does not exist: an error, kept with the answer
    with open(f"{tmp}/in/misrouted/report.pdf", "wb") as f:
        f.write(pdf)
    check(wait_for(lambda: "ERROR" in messages("misrouted"), 20), f"a wrong root is an error: {messages('misrouted')}")
    shown = show("misrouted", "ERROR")
    check(f"POST /no-dicom-web/studies/{study_uid}: 404" in shown and "1 attempt(s)" in shown,
          f"at once, naming the request and the status: {shown[-500:]}")

    # ---- content that is no DICOM file: an error saying so
    with open(f"{tmp}/in/text/note.txt", "w") as f:
        f.write("just text")
    check(wait_for(lambda: "ERROR" in messages("text"), 20), "text is not sent")
    check("is no DICOM file" in show("text", "ERROR"), f"and the error says why: {show('text', 'ERROR')[-300:]}")
    check(engine.poll() is None, "the engine goes on")
finally:
    pacs.stop()
    vna.stop()
    finish(procs, check, tmp)
check.exit()
