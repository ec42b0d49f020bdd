"""The web console in headless Chromium (tests/node/console_test.js with
puppeteer-core and Debian's chromium) against a real `junction run`: an MLLP
channel with a Lua transform and a file destination, an admin and a viewer.
The browser logs in, watches the dashboard count mllpload's messages, finds a
message by patient id and opens its stages, reprocesses it, stops and starts
the channel, follows a failing channel's link to its errors, changes and cancels a worklist
item, sees an alert fire while a destination is down and clear once it is back, manages a user,
and checks what a viewer sees and may do. Screenshots go to
build/test-artifacts/console/."""
import os
import subprocess
import sys

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
BUILD = os.environ.get("JUNCTION_BUILD_DIR", os.path.join(SRC, "build"))
NODE_DIR = os.path.join(SRC, "tests", "node")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, engine_dir, finish, free_port, port_open, start_engine, wait_for  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
for need, what in ((os.path.join(NODE_DIR, "node_modules", "puppeteer-core"), "tests/node/node_modules/puppeteer-core"),
                   (CHROMIUM, CHROMIUM)):
    if not os.path.exists(need):
        print(f"FAIL: {what} is missing: run scripts/setup.sh")
        sys.exit(1)

check = Checks()
admin_port, mllp_port, faulty_port, worklist_port, relay_port, peer_port = (free_port() for _ in range(6))
tmp = engine_dir("junction-console-", {
    "orders": "channel: orders\n"
              f"source: {{ type: mllp, port: {mllp_port} }}\n"
              "script: orders.lua\n"
              "transform: rename\n"
              "storage: development\n"
              "destinations:\n  - { name: archive, type: file, directory: out }\n",
    "faulty": "channel: faulty\n"
              f"source: {{ type: mllp, port: {faulty_port} }}\n"
              "script: orders.lua\n"
              "transform: fail\n"
              "destinations: []\n",
    "worklist": "channel: worklist\n"
                f"source: {{ type: mllp, port: {worklist_port} }}\n"
                f"script: {SRC}/transforms/orders_to_worklist.lua\n"
                "transform: to_worklist\n"
                "destinations:\n  - { name: worklist, type: worklist }\n",
    # Its peer is down until the browser test starts one: the alert fires, then clears.
    "relay": "channel: relay\n"
             f"source: {{ type: mllp, port: {relay_port} }}\n"
             "destinations:\n"
             f"  - {{ name: peer, type: mllp, host: 127.0.0.1, port: {peer_port},\n"
             "      retry: { attempts: 1000, backoff: 500ms, max_backoff: 1s } }\n",
}, store=f"store: {{ path: var/junction.db, sync: normal }}\nadmin: {{ port: {admin_port} }}\n"
         "alerts:\n  - { name: peer-down, when: destination_retrying, channel: relay, destination: peer }")
with open(f"{tmp}/orders.lua", "w") as f:
    f.write('function rename(msg)\n  msg:set("PID-5.1", "SMYTHE")\nend\n'
            'function fail(msg)\n  error("no mapping for this order")\nend\n')
ADMIN, VIEWER = ("admin", "admin-secret-1"), ("watcher", "watcher-pass-1")
PATIENT = "MRN-CONSOLE-7"
sample = open(os.path.join(SRC, "samples", "hl7", "orm_o01_nw.hl7")).read()
with open(f"{tmp}/one.hl7", "w") as f:
    f.write(sample.replace("MRN482913", PATIENT))
with open(f"{tmp}/load.hl7", "w") as f:
    f.write(sample.replace("MRN482913", "MRN-LOAD"))
with open(f"{tmp}/order.hl7", "w") as f:
    f.write(sample.replace("MRN482913", "MRN-WORKLIST"))

procs = []
try:
    procs.append(start_engine(tmp, ADMIN[1]))
    check(wait_for(lambda: port_open(admin_port) and port_open(mllp_port), timeout=30), "the engine listens")
    r = subprocess.run([BIN, "user", "add", VIEWER[0], "--role", "viewer", "--config", f"{tmp}/junction.yaml"],
                       input=VIEWER[1] + "\n", capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"user add: {r.stdout}{r.stderr}")
    r = subprocess.run([BIN, "hl7", "send", f"127.0.0.1:{mllp_port}", f"{tmp}/one.hl7"], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, f"hl7 send: {r.stdout}{r.stderr}")
    # A message that fails in the faulty channel's script: ERROR, shown on the dashboard.
    subprocess.run([BIN, "hl7", "send", f"127.0.0.1:{faulty_port}", f"{tmp}/load.hl7"], capture_output=True, timeout=60)
    # An order that becomes a worklist item (accession ACC20261123001).
    r = subprocess.run([BIN, "hl7", "send", f"127.0.0.1:{worklist_port}", f"{tmp}/order.hl7"], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, f"hl7 send to the worklist channel: {r.stdout}{r.stderr}")

    shots = os.path.join(BUILD, "test-artifacts", "console")
    node_env = dict(os.environ, CONSOLE_URL=f"http://127.0.0.1:{admin_port}", CONSOLE_ARTIFACTS=shots,
                    CONSOLE_CHANNEL="orders", CONSOLE_FAULTY="faulty", CONSOLE_PATIENT=PATIENT, CONSOLE_ADMIN=":".join(ADMIN),
                    CONSOLE_VIEWER=":".join(VIEWER), CONSOLE_MLLP_PORT=str(mllp_port),
                    CONSOLE_LOAD_MESSAGE=f"{tmp}/load.hl7", CONSOLE_RELAY_PORT=str(relay_port),
                    CONSOLE_PEER_PORT=str(peer_port), CHROMIUM=CHROMIUM)
    r = subprocess.run(["node", "console_test.js"], cwd=NODE_DIR, env=node_env, capture_output=True, text=True,
                       timeout=240)
    print(r.stdout[-6000:], r.stderr[-3000:])
    check(r.returncode == 0, "the browser test passed (its FAIL lines above)")
    check(os.path.exists(os.path.join(shots, "dashboard.png")), "a screenshot of the dashboard is kept")
finally:
    finish(procs, check, tmp)
check.exit()
