"""Requests to a running engine's admin API, for the integration tests."""
import base64
import json
import urllib.error
import urllib.request


def request(base, method, path, auth=None, token=None, body=None):
    """(status, parsed JSON or text) of a request to the admin API at `base`;
    (0, None) when nothing answers. `auth` is (user, password) for HTTP basic."""
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode())
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    except OSError:
        return 0, None
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text
