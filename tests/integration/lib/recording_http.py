"""A small recording HTTP server for the integration tests: stands in for the
REST APIs that cannot run here (OpenMRS, an EMR). It answers from a table of
routes and records every request (method, path, query, headers, body) so a
test can assert that Junction's requests match the documented API."""
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from checks import free_port


class Request:
    def __init__(self, method, target, headers, body):
        self.method = method
        parts = urllib.parse.urlsplit(target)
        self.path = parts.path
        self.query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        self.target = target
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else None

    def multipart(self):
        """The parts of a multipart/form-data body: name -> (headers, bytes)."""
        ctype = self.headers.get("content-type", "")
        if "boundary=" not in ctype:
            raise ValueError(f"not multipart: {ctype}")
        boundary = ctype.split("boundary=", 1)[1].split(";")[0].strip().strip('"').encode()
        parts = {}
        for chunk in self.body.split(b"--" + boundary)[1:]:
            if chunk.startswith(b"--"):
                break
            head, _, data = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
            if data.endswith(b"\r\n"):
                data = data[:-2]
            hdrs = {}
            for line in head.decode("latin-1").split("\r\n"):
                if ":" in line:
                    k, v = line.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
            disp = hdrs.get("content-disposition", "")
            name = None
            for item in disp.split(";"):
                item = item.strip()
                if item.startswith("name="):
                    name = item[5:].strip('"')
            parts[name] = (hdrs, data)
        return parts

    def __repr__(self):
        return f"{self.method} {self.target}"


class RecordingServer:
    """routes: {(method, path): handler}, a path ending with '*' taking every
    path under it; a handler takes the Request and
    returns (status, body[, headers]); body may be a dict/list (sent as JSON),
    str or bytes. A list of handlers or tuples is answered in turn (the last
    one repeats): e.g. [(500, "busy"), (201, {...})] for a retry test."""

    def __init__(self, routes=None):
        self.routes = dict(routes or {})
        self.requests = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.calls = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                req = Request(self.command, self.path, dict(self.headers), body)
                with outer.lock:
                    outer.requests.append(req)
                status, payload, headers = outer.answer(req)
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                    headers.setdefault("Content-Type", "application/json")
                elif isinstance(payload, str):
                    payload = payload.encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, req):
        key = (req.method, req.path)
        with self.lock:
            route = self.routes.get(key)
            if route is None:  # a route whose path ends with '*' takes every path under it
                for (method, path), r in self.routes.items():
                    if method == req.method and path.endswith("*") and req.path.startswith(path[:-1]):
                        key, route = (method, path), r
                        break
            if route is None:
                return 404, {"error": f"no route {req.method} {req.path}"}, {}
            if isinstance(route, list):
                i = self.calls.get(key, 0)
                self.calls[key] = i + 1
                route = route[min(i, len(route) - 1)]
        out = route(req) if callable(route) else route
        status, payload = out[0], out[1]
        headers = dict(out[2]) if len(out) > 2 else {}
        return status, payload, headers

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def received(self, method=None, path=None):
        with self.lock:
            return [r for r in self.requests if (method is None or r.method == method) and (path is None or r.path == path)]
