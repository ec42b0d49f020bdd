"""A script that runs away inside a C function (a pattern that backtracks for
minutes in standard Lua) fails its message with an error naming the limit, and
the channel goes on with the next message. SIGTERM while such a script runs
stops the engine cleanly, and after a restart the message does not come back."""
import os
import signal
import subprocess
import sys
import tempfile
import time

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, finish, free_port, port_open, wait_for  # noqa: E402

check = Checks()
tmp = tempfile.mkdtemp(prefix="junction-lua-runaway-")
port = free_port()
os.makedirs(f"{tmp}/channels")
with open(f"{tmp}/junction.yaml", "w") as f:
    f.write("store: { path: var/junction.db, sync: normal }\nadmin: { port: 0 }\n")
with open(f"{tmp}/channels/a.yaml", "w") as f:
    f.write(f"channel: a\nsource: {{ type: mllp, port: {port}, host: 127.0.0.1 }}\n"
            "script: runaway.lua\ntransform: check\n"
            "destinations:\n  - { name: out, type: file, directory: out, filename: \"${MSH-10}.hl7\" }\n")
with open(f"{tmp}/runaway.lua", "w") as f:
    f.write('function check(msg)\n'
            '  if msg:get("MSH-10") == "HANG1" then\n'
            '    local s = string.rep("a", 40)\n'
            '    s:find(("a*"):rep(10) .. "b")\n'
            '  elseif msg:get("MSH-10") == "HANG2" then\n'
            '    -- within every limit but time: runs until the 5 s time limit\n'
            '    for i = 1, 1e6 do string.rep("a", 30):find(("a*"):rep(5) .. "b") end\n'
            '  end\n'
            'end\n')
sample = open(os.path.join(SRC, "samples", "hl7", "orm_o01_nw.hl7")).read()
for name, control in (("hang1", "HANG1"), ("hang2", "HANG2"), ("fine1", "FINE1"), ("fine2", "FINE2")):
    with open(f"{tmp}/{name}.hl7", "w") as f:
        f.write(sample.replace("|ORM0001|", f"|{control}|"))
LOG = f"{tmp}/junction.log"
DEADLINE = 5  # the default time limit of a script call, in seconds


def start():
    engine = subprocess.Popen([BIN, "run"], cwd=tmp, stdout=open(LOG, "a"), stderr=subprocess.STDOUT)
    procs.append(engine)
    check(wait_for(lambda: port_open(port), timeout=15), "the engine listens")
    return engine


def send(name):
    began = time.time()
    r = subprocess.run([BIN, "hl7", "send", f"127.0.0.1:{port}", f"{tmp}/{name}.hl7", "--timeout", "60"],
                       capture_output=True, text=True)
    return r, time.time() - began


procs = []
try:
    engine = start()
    r, took = send("hang1")
    check(r.returncode == 0 and took < 3 * DEADLINE,
          f"the runaway message is answered (stored) within the bound: {took:.1f} s {r.stdout}{r.stderr}")
    check(wait_for(lambda: "message HANG1: " in open(LOG).read() and "pattern too complex" in open(LOG).read(), 5),
          "its error names the limit it exceeded")
    r, took = send("fine1")
    check(r.returncode == 0 and took < DEADLINE, f"the next message is processed as usual ({took:.1f} s): {r.stdout}")
    check(wait_for(lambda: os.path.exists(f"{tmp}/out/FINE1.hl7"), 10), "and delivered")

    # SIGTERM while a runaway script runs: a clean stop, without waiting minutes
    # (the stop gives scripts a second, then cuts them short: it does not wait for the time limit)
    sender = subprocess.Popen([BIN, "hl7", "send", f"127.0.0.1:{port}", f"{tmp}/hang2.hl7", "--timeout", "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.3)
    began = time.time()
    engine.send_signal(signal.SIGTERM)
    wait_for(lambda: engine.poll() is not None, 3 * DEADLINE)
    took = time.time() - began
    answer, _ = sender.communicate(timeout=30)
    check(engine.poll() == 0 and took < 3,
          f"SIGTERM stops the engine cleanly without waiting for the script's time limit: exit {engine.poll()} "
          f"after {took:.1f} s")
    check("MSA|AE" in answer and "stopping" in answer,
          f"the message whose script was cut short is answered AE, to be sent again: {answer.strip()[:300]}")

    # After a restart the runaway messages are not processed again
    engine = start()
    r, took = send("fine2")
    check(r.returncode == 0 and took < DEADLINE, f"after a restart messages flow ({took:.1f} s): {r.stdout}")
    check(wait_for(lambda: os.path.exists(f"{tmp}/out/FINE2.hl7"), 10), "and are delivered")
    r = subprocess.run([BIN, "messages", "--config", f"{tmp}/junction.yaml", "--channel", "a", "--counts"],
                       capture_output=True, text=True)
    check("ERROR" in r.stdout, f"the runaway message is stored as ERROR: {r.stdout}{r.stderr}")
    r = subprocess.run([BIN, "messages", "--config", f"{tmp}/junction.yaml", "--channel", "a", "--status", "ERROR"],
                       capture_output=True, text=True)
    check("HANG1" in r.stdout and "HANG2" not in r.stdout,
          f"... and the one cut short by the stop is not stored at all: {r.stdout}{r.stderr}")
finally:
    finish(procs, check, tmp)
check.exit()
