"""DICOM images through a channel with real peers: DCMTK's storescu sends
pydicom's sample files (uncompressed, JPEG, JPEG-LS, JPEG 2000, RLE, deflate)
to Junction's `dicom` source; a Lua transformer rewrites PatientID; the
`dicom` destination sends them on to DCMTK's storescp. The received files carry
the new PatientID, their own transfer syntax and byte-identical pixel data;
Junction's own copies hold the datasets as sent, in their transfer syntax. echoscu gets an answer,
and a stable-study message follows each study."""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pydicom

BIN = os.environ["JUNCTION_BIN"]
SAMPLES = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, finish, wait_for, free_port  # noqa: E402
JPORT, PPORT = free_port(), free_port()

check = Checks()




# file, storescu option proposing its transfer syntax
FILES = [
    ("CT_small.dcm", []),
    ("MR_small.dcm", []),
    ("MR_small_bigendian.dcm", ["-xb"]),
    ("JPEG2000.dcm", ["-xw"]),
    ("MR_small_jp2klossless.dcm", ["-xv"]),
    ("SC_rgb_rle.dcm", ["-xr"]),
    ("MR_small_jpeg_ls_lossless.dcm", ["-xt"]),
    ("JPEG-lossy.dcm", ["-xx"]),
    ("image_dfl.dcm", ["-xd"]),
]

tmp = tempfile.mkdtemp(prefix="junction-dicom-chain-")
procs = []
try:
    os.makedirs(f"{tmp}/channels")
    os.makedirs(f"{tmp}/pacs")
    with open(f"{tmp}/junction.yaml", "w") as f:
        f.write("store: { path: var/j.db }\nadmin: { port: 0 }\n")
    with open(f"{tmp}/fix.lua", "w") as f:
        f.write("""
function fix(msg)
  if msg.event == "study-stable" then
    route("studies")
    return
  end
  local pid = msg["00100020"]
  local old = pid and pid.Value and pid.Value[1] or ""
  msg["00100020"] = { vr = "LO", Value = { "FIXED-" .. old } }
  msg["00081030"] = { vr = "LO", Value = { "Edited by Junction" } }  -- StudyDescription (may be new)
  route("pacs")
end
""")
    with open(f"{tmp}/channels/images.yaml", "w") as f:
        f.write(f"""channel: images
source: {{ type: dicom, port: {JPORT}, ae_title: JUNCTION, allowed_aes: [STORESCU, ECHOSCU], stable_study: 1s }}
script: fix.lua
transform: fix
destinations:
  - {{ name: pacs, type: dicom, host: 127.0.0.1, port: {PPORT}, called_ae: PACS, calling_ae: JUNCTION }}
  - {{ name: studies, type: file, directory: studies, filename: "${{id}}.json" }}
""")
    procs.append(subprocess.Popen(["storescp", "-aet", "PACS", "+xa", "-od", f"{tmp}/pacs", str(PPORT)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    env = dict(os.environ)
    env.pop("TCP_NODELAY", None)
    log = open(f"{tmp}/junction.log", "w")
    procs.append(subprocess.Popen([BIN, "run"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT, env=env))

    def echo(aet="ECHOSCU"):
        return subprocess.run(["echoscu", "-aet", aet, "-aec", "JUNCTION", "127.0.0.1", str(JPORT)],
                              capture_output=True).returncode == 0

    check(wait_for(echo, 10), "echoscu gets an answer from the dicom source")

    def same_elements(a, b):
        """Equal datasets, group lengths and trailing padding (FFFC,FFFC) aside; pixel
        data by its bytes (DCMTK writes encapsulated pixel data as OB where a sample says OW)."""
        ka = {t for t in a.keys() if t.element != 0 and t != 0xFFFCFFFC}
        kb = {t for t in b.keys() if t.element != 0 and t != 0xFFFCFFFC}
        return ka == kb and all(a[t].value == b[t].value if t == 0x7FE00010 else a[t] == b[t] for t in ka)

    os.makedirs(f"{tmp}/checked")
    for name, opts in FILES:
        # Some samples share a SOP Instance UID: one at a time, each checked and moved aside.
        r = subprocess.run(["storescu", "-aet", "STORESCU", "-aec", "JUNCTION", *opts, "127.0.0.1", str(JPORT),
                            f"{SAMPLES}/{name}"], capture_output=True, text=True)
        check(r.returncode == 0, f"storescu {name} succeeds: {r.stderr.strip()[:300]}")
        orig = pydicom.dcmread(f"{SAMPLES}/{name}")
        uid = orig.SOPInstanceUID
        arrived = wait_for(lambda: any(uid in f and not f.startswith(".") for f in os.listdir(f"{tmp}/pacs")), 15)
        check(arrived, f"{name} reached storescp")
        if not arrived:
            continue
        time.sleep(0.2)  # storescp writes, then renames nothing: let it finish the file
        [path] = [f"{tmp}/pacs/{f}" for f in os.listdir(f"{tmp}/pacs") if uid in f]
        got = pydicom.dcmread(path)
        shutil.move(path, f"{tmp}/checked/{name}")
        check(got.PatientID == "FIXED-" + str(orig.get("PatientID", "")),
              f"{name}: PatientID rewritten by Lua ({got.PatientID!r})")
        check(got.StudyDescription == "Edited by Junction", f"{name}: StudyDescription set by Lua")
        check(got.file_meta.TransferSyntaxUID == orig.file_meta.TransferSyntaxUID,
              f"{name}: sent in its own transfer syntax {orig.file_meta.TransferSyntaxUID} "
              f"(got {got.file_meta.TransferSyntaxUID})")
        check(got.StudyInstanceUID == orig.StudyInstanceUID and got.SOPClassUID == orig.SOPClassUID,
              f"{name}: UIDs kept")
        if "PixelData" in orig:
            check(got.PixelData == orig.PixelData, f"{name}: pixel data byte-identical")
        # Everything else unchanged.
        for kw in ("PatientID", "StudyDescription"):
            if kw in got:
                delattr(got, kw)
            if kw in orig:
                delattr(orig, kw)
        check(same_elements(got, orig), f"{name}: all other tags as sent")
        # Junction's copy: the dataset as received, in the transfer syntax it came in.
        orig = pydicom.dcmread(f"{SAMPLES}/{name}")
        stored = f"{tmp}/var/dicom/{orig.StudyInstanceUID}/{orig.SeriesInstanceUID}/{uid}.dcm"
        check(os.path.exists(stored), f"{name}: stored under study/series/instance")
        if os.path.exists(stored):
            mine = pydicom.dcmread(stored)
            check(mine.file_meta.TransferSyntaxUID == orig.file_meta.TransferSyntaxUID,
                  f"{name}: stored in the transfer syntax it was sent in")
            check(same_elements(mine, orig), f"{name}: stored dataset equals the sent one")

    # The channel's messages: one per instance, DICOM JSON plus the file, all SENT.
    out = subprocess.run([BIN, "messages", "--channel", "images"], cwd=tmp, capture_output=True, text=True).stdout
    sent = [l for l in out.splitlines() if "SENT" in l]
    check(len(sent) >= len(FILES), f"{len(FILES)} instance messages SENT ({out!r})")
    show = subprocess.run([BIN, "messages", "--show", "1"], cwd=tmp, capture_output=True, text=True).stdout
    check('"file"' in show and '"CallingAE":"STORESCU"' in show and '"00100020"' in show,
          "a message holds DICOM JSON, the file and the calling AE")
    check('"7FE00010"' not in show, "no pixel data in the message")

    # Stable study: one message per study once it is quiet for 1s.
    studies = {pydicom.dcmread(f"{SAMPLES}/{n}").StudyInstanceUID for n, _ in FILES}

    def studies_seen():
        return {json.load(open(p))["StudyInstanceUID"] for p in glob.glob(f"{tmp}/studies/*.json")}

    check(wait_for(lambda: studies_seen() == studies, 15), f"{len(studies)} stable-study messages")
    seen = set()
    for p in glob.glob(f"{tmp}/studies/*.json"):
        m = json.load(open(p))
        seen.add(m["StudyInstanceUID"])
        check(m["event"] == "study-stable" and m["instances"] == len(m["files"]) and
              all(os.path.exists(x) for x in m["files"]), f"stable-study message {p} lists the study's files")
    check(seen == studies, "every study got its stable-study message")

    check(echo(), "echoscu still answered after the transfers")
    partial = [os.path.join(r, f) for r, _, fs in os.walk(f"{tmp}/var/dicom/.incoming") for f in fs
               if os.path.getsize(os.path.join(r, f)) > 0]
    check(not partial, f"no partial files left (the empty spares aside): {partial}")
finally:
    finish(procs, check, tmp)

check.exit()
