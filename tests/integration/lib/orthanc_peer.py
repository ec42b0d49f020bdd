"""A real Orthanc (the Debian package, with its DICOMweb plugin) for the
integration tests: started on free loopback ports with a temporary
configuration (users, a short StableAge), and a small REST client for it."""
import base64
import glob
import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.request

from checks import free_port, wait_for

ORTHANC = "/usr/sbin/Orthanc"
PLUGINS = "/usr/share/orthanc/plugins"


class Orthanc:
    def __init__(self, user="junction", password="secret", stable_age=2, aet="ORTHANC", name="orthanc",
                 dicomweb=True, workdir=None):
        self.user, self.password = user, password
        self.dir = workdir or tempfile.mkdtemp(prefix="junction-orthanc-")
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.aet = aet
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.log_path = os.path.join(self.dir, f"{name}.log")
        plugins = [p for p in glob.glob(f"{PLUGINS}/libOrthancDicomWeb.so")] if dicomweb else []
        self.config = {
            "Name": name,
            "StorageDirectory": os.path.join(self.dir, "storage"),
            "IndexDirectory": os.path.join(self.dir, "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {user: password},
            "StableAge": stable_age,
            "Plugins": plugins,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "DicomModalities": {},
            "OrthancPeers": {},
            "ConcurrentJobs": 2,
            "HttpThreadsCount": 10,
        }
        self.proc = None

    def start(self, timeout=30):
        os.makedirs(self.dir, exist_ok=True)
        path = os.path.join(self.dir, "orthanc.json")
        with open(path, "w") as f:
            json.dump(self.config, f, indent=1)
        self.proc = subprocess.Popen([ORTHANC, "--no-jobs", path], stdout=open(self.log_path, "a"),
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        if not wait_for(self.alive, timeout, 0.2):
            self.stop()
            raise RuntimeError(f"Orthanc did not start: {open(self.log_path).read()[-2000:]}")
        return self

    def alive(self):
        try:
            self.get("/system")
            return True
        except (OSError, urllib.error.URLError):
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    # ------------------------------------------------------------ REST
    def request(self, method, path, body=None, content_type=None, auth=True, timeout=30, raw=False):
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if auth:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            req.add_header("Authorization", "Basic " + token)
        if content_type:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            data = r.read()
        if raw:
            return data
        return json.loads(data) if data else None

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            kw.setdefault("content_type", "application/json")
        return self.request("POST", path, body if body is not None else b"", **kw)

    def upload(self, path):
        """POST /instances with a DICOM file; returns Orthanc's answer (ID, ParentStudy...)."""
        with open(path, "rb") as f:
            return self.post("/instances", f.read(), content_type="application/dicom")

    def changes(self, since=0, limit=100):
        return self.get(f"/changes?since={since}&limit={limit}")

    def create_study(self, patient):
        """A new instance of a new study of patient `patient` (POST /tools/create-dicom);
        returns Orthanc's answer (ID, ParentStudy ...)."""
        return self.post("/tools/create-dicom", {"Tags": {
            "PatientID": patient, "PatientName": f"TEST^{patient}", "Modality": "OT",
            "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}})

    def last_change(self):
        return self.get("/changes?last")["Last"]

    def wait_stable(self, study_id, timeout=30):
        return wait_for(lambda: self.get(f"/studies/{study_id}").get("IsStable"), timeout, 0.2)
