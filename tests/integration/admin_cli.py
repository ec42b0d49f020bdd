"""The admin API of a running `junction run`, and the CLI that talks to it:
the first start makes the admin account (password from JUNCTION_ADMIN_PASSWORD,
or generated and printed once), routes refuse requests without credentials,
`junction channel stop|start|trigger|redeploy` act on the running engine,
`junction user add|token` manage accounts while it runs, a viewer is refused
what an operator may do, and /metrics parses as Prometheus text."""
import os
import re
import subprocess
import sys

BIN = os.environ["JUNCTION_BIN"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import admin_api  # noqa: E402
from checks import Checks, engine_dir, finish, free_port, start_engine, stop, wait_for  # noqa: E402

check = Checks()
port = free_port()
tmp = engine_dir("junction-admin-", {
    "emr-sync": "channel: emr-sync\n"
                "source: { type: schedule, interval: 1h, run_at_start: false }\n"
                "destinations: []\n",
    "files": "channel: files\n"
             "source: { type: file, directory: in, poll_interval: 100ms }\n"
             "destinations:\n  - { name: out, type: file, directory: out }\n",
}, store=f"store: {{ path: var/junction.db, sync: normal }}\nadmin: {{ port: {port} }}")
BASE = f"http://127.0.0.1:{port}"
ADMIN = ("admin", "admin-secret-1")


def api(method, path, auth=None, token=None, body=None):
    """(status, parsed JSON or text) of a request to the engine's admin API."""
    return admin_api.request(BASE, method, path, auth=auth, token=token, body=body)


def cli(*args, user=ADMIN, token=None, stdin=None):
    env = dict(os.environ)
    for k in ("JUNCTION_USER", "JUNCTION_PASSWORD", "JUNCTION_TOKEN"):
        env.pop(k, None)
    if token:
        env["JUNCTION_TOKEN"] = token
    elif user:
        env["JUNCTION_USER"], env["JUNCTION_PASSWORD"] = user
    return subprocess.run([BIN, *args, "--config", f"{tmp}/junction.yaml"], input=stdin, capture_output=True,
                          text=True, env=env, timeout=60)


def messages(channel):
    status, body = api("GET", f"/api/v1/messages?channel={channel}", auth=ADMIN)
    return len(body["messages"]) if status == 200 else -1


procs = []
try:
    engine = start_engine(tmp, ADMIN[1])
    procs.append(engine)
    check(wait_for(lambda: api("GET", "/health")[0] == 200, timeout=30), "the admin API answers /health")
    check(api("GET", "/ready")[0] == 200, "/ready once the channels run")
    check(api("GET", "/api/v1/channels")[0] == 401, "no credentials: 401")
    check(api("GET", "/api/v1/channels", auth=("admin", "wrong"))[0] == 401, "a wrong password: 401")
    status, me = api("GET", "/api/v1/me", auth=ADMIN)
    check(status == 200 and me["role"] == "admin", f"the admin account has JUNCTION_ADMIN_PASSWORD: {status} {me}")
    check("with the password" not in open(f"{tmp}/junction.log").read(), "a given password is not printed")

    r = cli("channel", "list")
    check(r.returncode == 0 and re.search(r"emr-sync\s+running\s+schedule", r.stdout), f"channel list: {r.stdout}{r.stderr}")

    r = cli("channel", "stop", "emr-sync")
    check(r.returncode == 0 and "emr-sync: stopped" in r.stdout, f"channel stop: {r.stdout}{r.stderr}")
    check(api("GET", "/api/v1/channels/emr-sync", auth=ADMIN)[1]["state"] == "stopped", "stopped in the engine")
    r = cli("channel", "trigger", "emr-sync")
    check(r.returncode == 1 and "409" in r.stderr, f"a stopped channel is not triggered: {r.stdout}{r.stderr}")
    r = cli("channel", "start", "emr-sync")
    check(r.returncode == 0 and "emr-sync: running" in r.stdout, f"channel start: {r.stdout}{r.stderr}")

    check(messages("emr-sync") == 0, "no run before the trigger (run_at_start: false)")
    r = cli("channel", "trigger", "emr-sync")
    check(r.returncode == 0 and "triggered" in r.stdout, f"channel trigger: {r.stdout}{r.stderr}")
    check(wait_for(lambda: messages("emr-sync") == 1, timeout=10), "the trigger made one run")
    r = cli("channel", "trigger", "files")
    check(r.returncode == 1 and "nothing to run on demand" in r.stderr, f"a file source has nothing to trigger: {r.stderr}")
    r = cli("channel", "stop", "nope")
    check(r.returncode == 1 and "404" in r.stderr, f"an unknown channel: {r.stderr}")

    # Users while the engine runs: a viewer may look, not act.
    r = cli("user", "add", "watcher", "--role", "viewer", stdin="watcher-pass-1\n")
    check(r.returncode == 0, f"user add: {r.stdout}{r.stderr}")
    check("watcher-pass-1" not in open(f"{tmp}/junction.log").read(), "the password is not in the log")
    r = cli("channel", "list", user=("watcher", "watcher-pass-1"))
    check(r.returncode == 0 and "emr-sync" in r.stdout, f"a viewer lists: {r.stderr}")
    r = cli("channel", "stop", "emr-sync", user=("watcher", "watcher-pass-1"))
    check(r.returncode == 1 and "403" in r.stderr and "operator" in r.stderr, f"a viewer may not stop: {r.stderr}")
    r = cli("user", "token", "watcher", "--label", "dashboard")
    token = r.stdout.strip()
    check(r.returncode == 0 and token.startswith("jt_"), f"user token: {r.stdout}{r.stderr}")
    status, me = api("GET", "/api/v1/me", token=token)
    check(status == 200 and me["user"] == "watcher", f"the token is the viewer's: {status} {me}")
    r = cli("user", "role", "watcher", "operator")
    check(r.returncode == 0, f"user role: {r.stderr}")
    r = cli("channel", "stop", "files", token=token)
    check(r.returncode == 0 and "files: stopped" in r.stdout, f"an operator's token stops: {r.stdout}{r.stderr}")
    r = cli("user", "remove", "admin")
    check(r.returncode == 1 and "last admin" in r.stderr, f"the last admin stays: {r.stderr}")

    # Redeploy after a change on disk; a broken file is told with file:line:column.
    with open(f"{tmp}/channels/emr-sync.yaml", "a") as f:
        f.write("description: changed\n")
    r = cli("channel", "redeploy")
    check(r.returncode == 0 and "channel emr-sync: redeployed" in r.stdout, f"redeploy all: {r.stdout}{r.stderr}")
    with open(f"{tmp}/channels/emr-sync.yaml", "a") as f:
        f.write("bogus: 1\n")
    r = cli("channel", "redeploy", "emr-sync")
    check(r.returncode == 1 and re.search(r"emr-sync\.yaml:\d+:\d+: unknown key 'bogus'", r.stderr),
          f"a broken file: {r.stderr}")
    check(api("GET", "/api/v1/channels/emr-sync", auth=ADMIN)[1]["state"] == "running", "the old version runs on")

    # /metrics in Prometheus' text format.
    status, text = api("GET", "/metrics", auth=ADMIN)
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? \S+$')
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    check(status == 200 and lines and all(sample.match(ln) for ln in lines), "every /metrics line is a sample")
    check('junction_messages_total{channel="emr-sync",status="received"} 1' in lines or
          'junction_messages_total{channel="emr-sync",status="received"} 0' in lines,
          "junction_messages_total per channel and status")

    # The first start without JUNCTION_ADMIN_PASSWORD prints a generated password, once.
    port2 = free_port()
    tmp2 = engine_dir("junction-admin2-", {}, store=f"store: {{ path: var/j.db, sync: normal }}\nadmin: {{ port: {port2} }}")
    second = start_engine(tmp2, None)
    procs.append(second)
    check(wait_for(lambda: "with the password" in open(f"{tmp2}/junction.log").read(), timeout=30), "a password is printed")
    m = re.search(r"made the user 'admin' with the password (\S+)", open(f"{tmp2}/junction.log").read())
    BASE, saved = f"http://127.0.0.1:{port2}", BASE
    check(m and api("GET", "/api/v1/me", auth=("admin", m.group(1)))[0] == 200, "the printed password logs in")
    stop([second])
    second = start_engine(tmp2, None)
    procs.append(second)
    check(wait_for(lambda: api("GET", "/health")[0] == 200, timeout=30), "the second engine again")
    check(open(f"{tmp2}/junction.log").read().count("with the password") == 1, "printed only at the first start")
    stop([second])
    BASE = saved
    import shutil
    shutil.rmtree(tmp2, ignore_errors=True)
finally:
    finish(procs, check, tmp)
check.exit()
