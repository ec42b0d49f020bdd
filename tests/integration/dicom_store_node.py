"""An independent DICOM implementation as the sender: dcmjs-dimse (npm,
tests/node) sends C-ECHO and C-STORE of pydicom samples to the dicom source.
Every request succeeds, the instances are stored with their datasets as sent
and each becomes one channel message. An AE outside allowed_aes is rejected."""
import json
import os
import subprocess
import sys
import tempfile

import pydicom
from pydicom.encaps import generate_pixel_data_frame

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
SAMPLES = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
NODE_DIR = os.path.join(SRC, "tests", "node")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, finish, wait_for, free_port  # noqa: E402
JPORT = free_port()

check = Checks()




if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "dcmjs-dimse")):
    print("FAIL: tests/node/node_modules is missing: run scripts/setup.sh (npm ci)")
    print("0 passed, 1 failed")
    sys.exit(1)

FILES = ["CT_small.dcm", "MR_small.dcm", "SC_rgb_rle.dcm"]
tmp = tempfile.mkdtemp(prefix="junction-dicom-node-")
procs = []
try:
    os.makedirs(f"{tmp}/channels")
    with open(f"{tmp}/junction.yaml", "w") as f:
        f.write("store: { path: var/j.db }\nadmin: { port: 0 }\n")
    with open(f"{tmp}/channels/in.yaml", "w") as f:
        f.write(f"""channel: in
source: {{ type: dicom, port: {JPORT}, ae_title: JUNCTION, allowed_aes: [DCMJS], storage_dir: images }}
destinations:
  - {{ name: log, type: file, directory: out, filename: "${{id}}.json" }}
""")
    log = open(f"{tmp}/junction.log", "w")
    procs.append(subprocess.Popen([BIN, "run"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT))
    check(wait_for(lambda: subprocess.run(["echoscu", "-aet", "DCMJS", "-aec", "JUNCTION", "127.0.0.1", str(JPORT)],
                                          capture_output=True).returncode == 0, 10), "the source is up")

    paths = [f"{SAMPLES}/{n}" for n in FILES]
    r = subprocess.run(["node", "store.js", "127.0.0.1", str(JPORT), "JUNCTION", "DCMJS", *paths], cwd=NODE_DIR,
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"dcmjs-dimse: every request succeeded ({r.stdout.strip()} {r.stderr.strip()[:300]})")
    try:
        res = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = {"echo": None, "stored": {}}
    check(res["echo"] == 0, "C-ECHO status 0")
    for p in paths:
        check(res["stored"].get(p) == 0, f"C-STORE {os.path.basename(p)} status 0")
        orig = pydicom.dcmread(p)
        stored = f"{tmp}/images/{orig.StudyInstanceUID}/{orig.SeriesInstanceUID}/{orig.SOPInstanceUID}.dcm"
        check(os.path.exists(stored), f"{os.path.basename(p)} stored under storage_dir")
        if os.path.exists(stored):
            got = pydicom.dcmread(stored)
            check(got.PatientID == orig.PatientID and got.SOPClassUID == orig.SOPClassUID,
                  f"{os.path.basename(p)}: stored tags as sent")
            check(got.file_meta.TransferSyntaxUID == orig.file_meta.TransferSyntaxUID,
                  f"{os.path.basename(p)}: kept in its transfer syntax")
            if orig.file_meta.TransferSyntaxUID.is_compressed:
                # dcmjs-dimse fills in the basic offset table: compare the compressed frames.
                same = list(generate_pixel_data_frame(got.PixelData)) == list(generate_pixel_data_frame(orig.PixelData))
            else:
                same = got.PixelData == orig.PixelData
            check(same, f"{os.path.basename(p)}: pixel data as sent")
    check(wait_for(lambda: os.path.isdir(f"{tmp}/out") and len(os.listdir(f"{tmp}/out")) == len(FILES)),
          "one channel message per instance")
    msgs = [json.load(open(f"{tmp}/out/{f}")) for f in sorted(os.listdir(f"{tmp}/out"))] \
        if os.path.isdir(f"{tmp}/out") else []
    check(all(m.get("CallingAE") == "DCMJS" and os.path.exists(m.get("file", "")) for m in msgs),
          "messages name the calling AE and the stored file")

    r = subprocess.run(["node", "store.js", "127.0.0.1", str(JPORT), "JUNCTION", "STRANGER", paths[0]],
                       cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    check(r.returncode != 0 and "rejected" in r.stdout, f"calling AE STRANGER rejected ({r.stdout.strip()[:200]})")
    check(procs[0].poll() is None, "the engine is still running")
finally:
    finish(procs, check, tmp)

check.exit()
