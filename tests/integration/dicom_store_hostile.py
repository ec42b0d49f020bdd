"""The dicom source against bad input: an unknown SOP class (presentation
context rejected), a calling AE not in allowed_aes (association rejected), a
corrupt and a truncated dataset (status 0xC000, nothing kept), an association
aborted mid-transfer (partial file removed) and bytes that are no DICOM at all.
The server keeps serving after each, and every accepted instance is kept."""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

import pydicom

BIN = os.environ["JUNCTION_BIN"]
SAMPLES = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, finish, wait_for, free_port  # noqa: E402
JPORT = free_port()

check = Checks()




# ---------------------------------------------------------------- a minimal DICOM upper layer client

def uid_bytes(uid):
    b = uid.encode()
    return b + b"\0" if len(b) % 2 else b


def item(kind, payload):
    return struct.pack(">BBH", kind, 0, len(payload)) + payload


def associate_rq(calling, called, sop, ts):
    pc = struct.pack(">BBBB", 1, 0, 0, 0) + item(0x30, uid_bytes(sop)) + item(0x40, uid_bytes(ts))
    user = item(0x51, struct.pack(">I", 16384)) + item(0x52, uid_bytes("1.2.826.0.1.3680043.9.7433.1"))
    body = (struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode() + b"\0" * 32 +
            item(0x10, uid_bytes("1.2.840.10008.3.1.1.1")) + item(0x20, pc) + item(0x50, user))
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def pdata(pcid, control, data):
    pdv = struct.pack(">IBB", len(data) + 2, pcid, control) + data
    return struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv


def element(group, elem, value):
    if isinstance(value, int):
        value = struct.pack("<H", value)
    elif isinstance(value, str):
        value = uid_bytes(value)
    return struct.pack("<HHI", group, elem, len(value)) + value


def store_command(sop_class, sop_instance, message_id=1):
    body = (element(0, 0x0002, sop_class) + element(0, 0x0100, 0x0001) + element(0, 0x0110, message_id) +
            element(0, 0x0700, 0) + element(0, 0x0800, 0x0000) + element(0, 0x1000, sop_instance))
    return element(0, 0x0000, struct.pack("<I", len(body))) + body


def read_pdu(sock):
    head = b""
    while len(head) < 6:
        chunk = sock.recv(6 - len(head))
        if not chunk:
            return None, b""
        head += chunk
    kind, _, length = struct.unpack(">BBI", head)
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            break
        body += chunk
    return kind, body


def status_of(pdata_body):
    """The (0000,0900) Status of a C-STORE-RSP command in a P-DATA-TF body."""
    data = pdata_body[6:]
    i = 0
    while i + 8 <= len(data):
        g, e, n = struct.unpack("<HHI", data[i:i + 8])
        if (g, e) == (0, 0x0900):
            return struct.unpack("<H", data[i + 8:i + 10])[0]
        i += 8 + n
    return None


def open_association(calling="RAWSCU"):
    s = socket.create_connection(("127.0.0.1", JPORT), timeout=10)
    s.sendall(associate_rq(calling, "JUNCTION", CT_IMAGE_STORAGE, EXPLICIT_LE))
    kind, body = read_pdu(s)
    return s, kind


def dataset_bytes(path):
    with open(path, "rb") as f:
        data = f.read()
    glen = int.from_bytes(data[140:144], "little")  # (0002,0000) group length
    return data[144 + glen:]


# ---------------------------------------------------------------- the test

tmp = tempfile.mkdtemp(prefix="junction-dicom-hostile-")
procs = []
try:
    os.makedirs(f"{tmp}/channels")
    with open(f"{tmp}/junction.yaml", "w") as f:
        f.write("store: { path: var/j.db }\nadmin: { port: 0 }\n")
    with open(f"{tmp}/channels/in.yaml", "w") as f:
        f.write(f"""channel: in
source: {{ type: dicom, port: {JPORT}, ae_title: JUNCTION, allowed_aes: [STORESCU, ECHOSCU, RAWSCU], timeout: 5s }}
destinations:
  - {{ name: log, type: file, directory: out, filename: "${{id}}.json" }}
""")
    log = open(f"{tmp}/junction.log", "w")
    procs.append(subprocess.Popen([BIN, "run"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT))
    storage = f"{tmp}/var/dicom"

    def echo(aet="ECHOSCU"):
        return subprocess.run(["echoscu", "-aet", aet, "-aec", "JUNCTION", "127.0.0.1", str(JPORT)],
                              capture_output=True).returncode == 0

    def stored_files():
        out = []
        for root, dirs, files in os.walk(storage):
            if ".incoming" in root:
                continue
            out += [os.path.join(root, f) for f in files]
        return out

    def incoming():
        # Partial files: the server keeps a few empty spare files there, nothing else.
        out = []
        for root, dirs, files in os.walk(f"{storage}/.incoming"):
            out += [p for p in (os.path.join(root, f) for f in files) if os.path.getsize(p) > 0]
        return out

    def store_ok():
        r = subprocess.run(["storescu", "-aet", "STORESCU", "-aec", "JUNCTION", "127.0.0.1", str(JPORT),
                            f"{SAMPLES}/CT_small.dcm"], capture_output=True)
        return r.returncode == 0

    check(wait_for(echo, 10), "the server answers C-ECHO")

    # Unknown SOP class: the presentation context is rejected, nothing stored.
    odd = pydicom.dcmread(f"{SAMPLES}/CT_small.dcm")
    odd.SOPClassUID = "1.2.826.0.1.3680043.9.7433.99.1"
    odd.file_meta.MediaStorageSOPClassUID = odd.SOPClassUID
    odd.SOPInstanceUID = "1.2.826.0.1.3680043.9.7433.99.2"
    odd.save_as(f"{tmp}/odd.dcm")
    r = subprocess.run(["storescu", "-aet", "STORESCU", "-aec", "JUNCTION", "127.0.0.1", str(JPORT), f"{tmp}/odd.dcm"],
                       capture_output=True, text=True)
    check(r.returncode != 0, "storescu of an unknown SOP class fails")
    check("presentation context" in r.stderr.lower() or "no acceptable" in r.stderr.lower(),
          f"... because no presentation context was accepted ({r.stderr.strip()[:200]})")
    check(not stored_files(), "nothing stored for the unknown SOP class")
    check(echo(), "server still serves after the unknown SOP class")

    # Calling AE not allowed: association rejected.
    r = subprocess.run(["storescu", "-aet", "EVIL", "-aec", "JUNCTION", "127.0.0.1", str(JPORT),
                        f"{SAMPLES}/CT_small.dcm"], capture_output=True, text=True)
    check(r.returncode != 0 and "rejected" in r.stderr.lower(), f"calling AE EVIL rejected ({r.stderr.strip()[:200]})")
    check("Calling AE Title Not Recognized" in r.stderr, "... with reason calling AE title not recognized")
    check(not echo("EVIL"), "C-ECHO from EVIL rejected too")
    check(not stored_files(), "nothing stored from EVIL")

    # Corrupt dataset (garbage in the last fragment): 0xC000, nothing kept, association goes on.
    s, kind = open_association()
    check(kind == 0x02, f"raw association accepted (PDU type {kind})")
    s.sendall(pdata(1, 0x03, store_command(CT_IMAGE_STORAGE, "1.2.826.0.1.3680043.9.7433.99.3")))
    s.sendall(pdata(1, 0x02, b"\x08\x00\x16\x00UI\xff\xff" + os.urandom(64)))
    kind, body = read_pdu(s)
    check(kind == 0x04 and status_of(body) == 0xC000, f"corrupt dataset answered 0xC000 (got {kind}, "
          f"{status_of(body) if kind == 4 else None})")
    # Truncated dataset (half of CT_small, sent as complete): 0xC000 as well, on the same association.
    ct = dataset_bytes(f"{SAMPLES}/CT_small.dcm")
    s.sendall(pdata(1, 0x03, store_command(CT_IMAGE_STORAGE, pydicom.dcmread(f"{SAMPLES}/CT_small.dcm").SOPInstanceUID, 2)))
    s.sendall(pdata(1, 0x02, ct[:(len(ct) // 4) * 2]))
    kind, body = read_pdu(s)
    check(kind == 0x04 and status_of(body) == 0xC000, f"truncated dataset answered 0xC000 (got {kind}, "
          f"{status_of(body) if kind == 4 else None})")
    s.sendall(struct.pack(">BBIxxxx", 0x05, 0, 4))  # A-RELEASE-RQ
    kind, _ = read_pdu(s)
    check(kind == 0x06, "release answered")
    s.close()
    check(not stored_files() and not incoming(), "nothing kept from the corrupt and truncated datasets")

    # Aborted mid-transfer: the partial file is removed.
    s, kind = open_association()
    s.sendall(pdata(1, 0x03, store_command(CT_IMAGE_STORAGE, "1.2.826.0.1.3680043.9.7433.99.4")))
    s.sendall(pdata(1, 0x00, ct[:4000]))  # not the last fragment
    time.sleep(0.3)
    s.sendall(struct.pack(">BBIBBBB", 0x07, 0, 4, 0, 0, 0, 0))  # A-ABORT
    s.close()
    check(wait_for(lambda: not incoming(), 10) and not stored_files(), "aborted transfer left no file")
    # The same, but the connection just drops.
    s, kind = open_association()
    s.sendall(pdata(1, 0x03, store_command(CT_IMAGE_STORAGE, "1.2.826.0.1.3680043.9.7433.99.5")))
    s.sendall(pdata(1, 0x00, ct[:4000]))
    time.sleep(0.3)
    s.close()
    check(wait_for(lambda: not incoming(), 10) and not stored_files(), "dropped connection left no file")

    # Bytes that are no DICOM.
    s = socket.create_connection(("127.0.0.1", JPORT), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(2000))
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()

    # Idle connections (more than the server keeps waiting for a request) do not
    # lock the port out: a new peer is served at once, the longest-idle one goes.
    idle = [socket.create_connection(("127.0.0.1", JPORT), timeout=5) for _ in range(150)]
    time.sleep(0.5)
    began = time.time()
    served = echo()
    took = time.time() - began
    check(served and took < 2, f"C-ECHO is served within 2 s while 150 idle connections are open ({took:.1f} s)")
    check(wait_for(lambda: "without an association request, to make room" in open(f"{tmp}/junction.log").read(), 5),
          "the eviction of an idle connection is logged")
    for c in idle:
        c.close()
    time.sleep(0.3)

    # A peer that opens an association and goes silent is dropped after `timeout`.
    silent, kind = open_association()

    check(echo(), "server still answers C-ECHO after all that")
    check(store_ok(), "and stores a good instance")
    check(len(stored_files()) == 1, f"exactly the good instance is stored ({stored_files()})")
    check(wait_for(lambda: len(os.listdir(f"{tmp}/out")) == 1 if os.path.isdir(f"{tmp}/out") else False),
          "one message went through the channel")
    silent.settimeout(15)
    try:
        data = silent.recv(100)
        gone = data == b"" or data[:1] in (b"\x05", b"\x07")  # closed, A-RELEASE-RQ or A-ABORT
    except socket.timeout:
        gone = False
    except OSError:
        gone = True  # reset
    check(gone, "a silent association is closed by the server")
    silent.close()
    check(procs[0].poll() is None, "the engine is still running")
finally:
    finish(procs, check, tmp)

check.exit()
