"""OpenMRS as the imaging workflows use it, for the integration tests: a
recording server (recording_http) answering the documented REST endpoints of
OpenMRS (REST web services v1) and its imaging module, under /openmrs, with
basic authentication of one service account. Tests assert on `received()`.

  GET  /ws/rest/v1/worklist/requests              the procedure requests, a JSON
                                                  array of create-dicom datasets
  POST /ws/rest/v1/worklist/updaterequeststatus   ?studyInstanceUID=&performedProcedureStepID=
  GET  /ws/rest/v1/patient?identifier=ID          {"results": [{"uuid", "display"}]}
  POST /ws/rest/v1/attachment                     multipart/form-data: patient,
                                                  fileCaption, file -> 201 {"uuid", ...}
"""
import base64
import threading
import uuid

from recording_http import RecordingServer

BASE = "/openmrs/ws/rest/v1"


class OpenMRS(RecordingServer):
    def __init__(self, user="junction", password="Imaging123"):
        self.user, self.password = user, password
        self.worklist = []           # what GET worklist/requests lists
        self.worklist_answer = None  # (status, body) instead, e.g. (200, "not json") or (500, "...")
        self.patients = {}           # identifier -> uuid
        self.attachments = []        # (patient uuid, caption, filename, content type, bytes)
        self.status_updates = []     # (studyInstanceUID, performedProcedureStepID)
        self.fail_next = {}          # path -> [status, ...] answered before the real answer
        self._lock = threading.Lock()
        super().__init__({
            ("GET", f"{BASE}/worklist/requests"): self._guard(self._worklist),
            ("POST", f"{BASE}/worklist/updaterequeststatus"): self._guard(self._update_status),
            ("GET", f"{BASE}/patient"): self._guard(self._patient),
            ("POST", f"{BASE}/attachment"): self._guard(self._attachment),
        })
        self.base = self.url + "/openmrs"

    def authorized(self, req):
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return req.headers.get("authorization") == f"Basic {token}"

    def _guard(self, handler):
        def run(req):
            if not self.authorized(req):
                return 401, {"error": {"message": "User is not logged in"}}, {"WWW-Authenticate": 'Basic realm="OpenMRS"'}
            with self._lock:
                queued = self.fail_next.get(req.path)
                if queued:
                    return queued.pop(0), {"error": {"message": "Internal Server Error"}}
            return handler(req)
        return run

    def _worklist(self, req):
        if self.worklist_answer is not None:
            return self.worklist_answer
        return 200, list(self.worklist)

    def _update_status(self, req):
        study = req.query.get("studyInstanceUID", [""])[0]
        step = req.query.get("performedProcedureStepID", [""])[0]
        if not study or not step:
            return 400, {"error": {"message": "studyInstanceUID and performedProcedureStepID are required"}}
        with self._lock:
            self.status_updates.append((study, step))
        return 200, {"studyInstanceUID": study, "performedProcedureStepID": step, "status": "COMPLETED"}

    def _patient(self, req):
        ident = req.query.get("identifier", [""])[0]
        found = self.patients.get(ident)
        results = [{"uuid": found, "display": f"{ident} - Patient"}] if found else []
        return 200, {"results": results}

    def _attachment(self, req):
        parts = req.multipart()
        missing = [p for p in ("patient", "fileCaption", "file") if p not in parts]
        if missing:
            return 400, {"error": {"message": f"missing parts {missing}"}}
        patient = parts["patient"][1].decode()
        if patient not in self.patients.values():
            return 400, {"error": {"message": f"no patient {patient}"}}
        headers, data = parts["file"]
        disp = headers.get("content-disposition", "")
        filename = disp.split("filename=", 1)[1].strip('"') if "filename=" in disp else ""
        with self._lock:
            self.attachments.append((patient, parts["fileCaption"][1].decode(), filename,
                                     headers.get("content-type", ""), data))
        return 201, {"uuid": str(uuid.uuid4()), "comment": parts["fileCaption"][1].decode(),
                     "dateTime": "2026-12-07T10:00:00.000+0000"}
