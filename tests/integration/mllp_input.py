"""The MLLP source against real and hostile senders: python-hl7's MLLP client
sends the samples and gets AA; garbage bytes, a frame that never ends and a
100 MB frame each lose only their own connection; malformed HL7 gets AE with
an ERR segment and is kept as ERROR. The engine keeps serving throughout."""
import os
import socket
import subprocess
import sys
import tempfile
import time

import hl7
from hl7.client import MLLPClient

BIN = os.environ["JUNCTION_BIN"]
SRC = os.environ["JUNCTION_SOURCE_DIR"]
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def sample(name):
    with open(os.path.join(SRC, "samples", "hl7", name), "rb") as f:
        return f.read().decode("latin-1")


def send_with_client(port, text):
    with MLLPClient("127.0.0.1", port) as client:
        return hl7.parse(client.send_message(text).decode("latin-1"))


with tempfile.TemporaryDirectory() as d:
    port = free_port()
    os.makedirs(os.path.join(d, "channels"))
    with open(os.path.join(d, "junction.yaml"), "w") as f:
        f.write("store: { path: var/j.db }\nadmin: { port: 0 }\n")
    with open(os.path.join(d, "channels", "in.yaml"), "w") as f:
        f.write(f"""channel: in
source: {{ type: mllp, port: {port}, host: 127.0.0.1, max_message_bytes: 1MB }}
destinations:
  - {{ name: out, type: file, directory: out, filename: "${{MSH-10}}.hl7" }}
""")
    log = open(os.path.join(d, "run.log"), "w")
    engine = subprocess.Popen([BIN, "run"], cwd=d, stdout=log, stderr=subprocess.STDOUT)
    try:
        check(wait_port(port), "engine listens")

        # python-hl7's own MLLP client
        for name in ["orm_o01_nw.hl7", "oru_r01.hl7", "adt_a04.hl7", "omi_o23.hl7"]:
            text = sample(name)
            ack = send_with_client(port, text)
            check(str(ack.segment("MSA")[1]) == "AA", f"{name}: AA")
            check(str(ack.segment("MSA")[2]) == str(hl7.parse(text).segment("MSH")[10]), f"{name}: MSA-2 echoes MSH-10")

        # garbage bytes outside any frame: that connection is closed
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(os.urandom(4096).replace(b"\x0b", b"x"))
        s.settimeout(5)
        try:
            closed = s.recv(10) == b""
        except ConnectionResetError:
            closed = True
        check(closed, "garbage: connection closed")
        s.close()

        # a frame that never ends, left open while another sender is served
        hanging = socket.create_connection(("127.0.0.1", port))
        hanging.sendall(b"\x0bMSH|^~\\&|A|B|C|D|20260101||ADT^A01|HANG|P|2.5\rPID|1")
        ack = send_with_client(port, sample("adt_a08.hl7"))
        check(str(ack.segment("MSA")[1]) == "AA", "served while another frame hangs open")
        hanging.close()

        # a 100 MB frame: refused early, the connection is closed
        big = socket.create_connection(("127.0.0.1", port))
        big.settimeout(10)
        start = time.time()
        cut = False
        try:
            big.sendall(b"\x0bMSH|^~\\&|A|B|C|D|20260101||ORU^R01|BIG|P|2.5\rOBX|1|ED|||")
            chunk = b"A" * (1 << 20)
            for _ in range(100):
                big.sendall(chunk)
            big.sendall(b"\x1c\r")
            cut = big.recv(10) == b""
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            cut = True
        big.close()
        check(cut, "100 MB frame: connection closed")
        check(time.time() - start < 20, "100 MB frame refused quickly")

        # malformed HL7 in a good frame: AE + ERR, kept as ERROR
        bad = "MSH|^~\\&|LAB|HOSP|EMR|HOSP|20260101||ORU^R01|BAD9|P|2.5\rP@D|1\r"
        ack = send_with_client(port, bad)
        check(str(ack.segment("MSA")[1]) == "AE", "malformed: AE")
        check(str(ack.segment("MSA")[2]) == "BAD9", "malformed: MSA-2")
        check(len(ack.segments("ERR")) == 1, "malformed: ERR segment")

        # and the engine still serves
        ack = send_with_client(port, sample("orm_o01_ca.hl7"))
        check(str(ack.segment("MSA")[1]) == "AA", "still serving at the end")
        check(engine.poll() is None, "engine still running")
        time.sleep(0.5)
        out = subprocess.run([BIN, "messages", "--channel", "in", "--status", "ERROR"], cwd=d,
                             capture_output=True, text=True)
        check("BAD9" in out.stdout and "invalid segment id" in out.stdout, "malformed message kept as ERROR")
        for cid in ["ORM0001", "ORU0001", "ADT0001", "OMI0001", "ADT0002", "ORM0002"]:
            check(os.path.exists(os.path.join(d, "out", cid + ".hl7")), f"{cid} delivered")
    finally:
        engine.terminate()
        try:
            rc = engine.wait(timeout=20)
        except subprocess.TimeoutExpired:
            engine.kill()
            rc = -9
        check(rc == 0, f"engine exits cleanly (rc {rc})")
        log.close()
        if failed:
            print(open(os.path.join(d, "run.log")).read()[-3000:])

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
