"""`mllp` sources against peers that would lock them, plain and TLS. Plain:
with 200 idle connections open (the default max_connections) a new sender is
answered within 2 s, the longest-idle connection making room (logged with its
peer and idle time); so with 200 slow senders (a byte every 100 ms, never a
whole frame); a frame not complete within frame_timeout closes its connection
(logged once, with the peer); max_connections_per_address refuses a sixth
connection from one address (logged) while another address is served.
TLS, with certificates made here by the openssl command (a CA, a server
certificate, client certificates lab-a and lab-b, one from another CA): 300
connections that never handshake do not keep a TLS client out (answered within
2 s, no thread per connection) and are closed (handshake_timeout, logged);
with verify_client a client certificate is checked against the CA alone,
whatever its names (neither CN is the client's address); tls.allowed_names
lets in the names listed and closes the others, logging the certificate's
names. Every message answered is delivered, no refused one is. Settings out
of their bounds keep their channel from loading, saying why at their
file:line:column (as `junction validate` does)."""
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ["JUNCTION_BIN"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from checks import Checks, finish, free_port, port_open, wait_for  # noqa: E402

check = Checks()
tmp = tempfile.mkdtemp(prefix="junction-mllp-hostile-")
LOG = f"{tmp}/junction.log"
PKI = f"{tmp}/pki"
os.makedirs(PKI)


def openssl(*args):
    subprocess.run(["openssl", *args], cwd=PKI, check=True, capture_output=True)


def make_ca(name, cn):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN={cn}")


def issue(name, cn, ca, extensions):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={cn}")
    with open(f"{PKI}/{name}.ext", "w") as f:
        f.write(extensions)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")


make_ca("ca", "Test CA")
make_ca("other-ca", "Other CA")
issue("server", "localhost", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
issue("lab-a", "lab-a", "ca", "extendedKeyUsage=clientAuth\n")
issue("lab-b", "lab-b", "ca", "extendedKeyUsage=clientAuth\nsubjectAltName=DNS:lab-b.example\n")
issue("stranger", "lab-a", "other-ca", "extendedKeyUsage=clientAuth\n")

SERVER = "cert: pki/server.pem, key: pki/server.key"
settings = {
    "idle": "",  # every default: max_connections 200, frame_timeout 30s, idle_timeout 5m
    "frames": "frame_timeout: 1s",
    "peraddr": "max_connections_per_address: 5",
    "open": f"tls: {{ {SERVER}, handshake_timeout: 2s }}",
    "mutual": f"tls: {{ {SERVER}, ca: pki/ca.pem, verify_client: true }}",
    "named": f"tls: {{ {SERVER}, ca: pki/ca.pem, verify_client: true, allowed_names: [lab-a] }}",
}
# Channels that must not load, and what their error says.
invalid = {
    "short_frame": ("frame_timeout: 50ms", "frame_timeout must be 0 (never) or from 100ms to 1h"),
    "long_handshake": (f"tls: {{ {SERVER}, handshake_timeout: 1h }}", "handshake_timeout must be from 100ms to 5m"),
    "names_unchecked": (f"tls: {{ {SERVER}, allowed_names: [lab-a] }}", "allowed_names needs verify_client: true"),
    "no_ca": (f"tls: {{ {SERVER}, verify_client: true }}", "verify_client needs ca"),
    "no_key": ("tls: { cert: pki/server.pem }", "tls needs cert and key"),
}
ports = {name: free_port() for name in settings}
os.makedirs(f"{tmp}/channels")
with open(f"{tmp}/junction.yaml", "w") as f:
    f.write("store: { path: var/junction.db }\nadmin: { port: 0 }\n")
for name, port in list(ports.items()) + [(name, free_port()) for name in invalid]:
    setting = settings[name] if name in settings else invalid[name][0]
    extra = f", {setting}" if setting else ""
    with open(f"{tmp}/channels/{name}.yaml", "w") as f:
        f.write(f"""channel: {name}
source: {{ type: mllp, port: {port}, host: 127.0.0.1{extra} }}
destinations:
  - {{ name: out, type: file, directory: out/{name}, filename: "${{MSH-10}}.hl7" }}
""")


def hl7(control_id):
    return f"MSH|^~\\&|LAB|HOSP|EMR|HOSP|20260101||ADT^A01|{control_id}|P|2.5\rPID|1||{control_id}\r"


def ack_code(channel, control_id, timeout, source=None, tls=False, client=None):
    """Sends one message from a new connection (from `source`; over TLS, the
    server checked against the CA, with the client certificate `client` if
    named); MSA-1 of its ACK, or None."""
    try:
        with socket.socket() as raw:
            if source:
                raw.bind((source, 0))
            raw.settimeout(timeout)
            raw.connect(("127.0.0.1", ports[channel]))
            s = raw
            if tls:
                ctx = ssl.create_default_context(cafile=f"{PKI}/ca.pem")
                if client:
                    ctx.load_cert_chain(f"{PKI}/{client}.pem", f"{PKI}/{client}.key")
                s = ctx.wrap_socket(raw, server_hostname="localhost")
            s.sendall(b"\x0b" + hl7(control_id).encode() + b"\x1c\r")
            data = b""
            while b"\x1c" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                data += chunk
    except (OSError, ssl.SSLError):
        return None
    for segment in data.strip(b"\x0b\x1c\r").split(b"\r"):
        if segment.startswith(b"MSA|"):
            return segment.split(b"|")[1].decode()
    return None


def answered_within(channel, control_id, limit, **how):
    start = time.time()
    return ack_code(channel, control_id, limit, **how) == "AA" and time.time() - start < limit


def connections(channel, n):
    return [socket.create_connection(("127.0.0.1", ports[channel])) for _ in range(n)]


def closed_within(s, limit):
    s.settimeout(limit)
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True
    except OSError:
        return False


def log_lines(*parts):
    with open(LOG) as f:
        return [line for line in f if all(p in line for p in parts)]


def peer_name(s):
    host, port = s.getsockname()
    return f"{host}:{port}"


class SlowSenders:
    """`n` connections that begin a frame, then send a byte each every 100 ms
    (for at most `seconds`) until stopped."""

    def __init__(self, channel, n, seconds):
        self.sockets = connections(channel, n)
        for s in self.sockets:
            s.send(b"\x0bMSH|")
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.trickle, args=(seconds,))
        self.thread.start()

    def trickle(self, seconds):
        end = time.time() + seconds
        while not self.done.is_set() and time.time() < end:
            for s in self.sockets:
                try:
                    s.send(b"x")
                except OSError:
                    pass
            time.sleep(0.1)

    def stop(self):
        self.done.set()
        self.thread.join()
        for s in self.sockets:
            s.close()


procs = []
try:
    engine = subprocess.Popen([BIN, "run"], cwd=tmp, stdout=open(LOG, "w"), stderr=subprocess.STDOUT)
    procs.append(engine)
    check(wait_for(lambda: all(port_open(p) for p in ports.values()), timeout=15), "the engine listens")
    for name, (_, error) in invalid.items():
        check(wait_for(lambda: log_lines(f"channels/{name}.yaml:2:", error), timeout=3),
              f"{name}: refused at its file:line:column ({error})")
    delivered = []

    # 200 idle connections: the limit reached, a new sender is still answered.
    idle = connections("idle", 200)
    time.sleep(0.5)
    check(answered_within("idle", "IDLE1", 2), "answered within 2 s with 200 idle connections open")
    delivered.append("idle/IDLE1")
    check(closed_within(idle[0], 2), "the longest-idle connection made room")
    check(wait_for(lambda: log_lines(peer_name(idle[0]), "idle for", "make room"), timeout=3),
          "the eviction is logged with the peer and its idle time")
    for s in idle:
        s.close()

    # 200 slow senders (frame_timeout 30 s): a new sender is still answered.
    slow = SlowSenders("idle", 200, 5)
    time.sleep(0.5)
    check(answered_within("idle", "SLOW1", 2), "answered within 2 s with 200 slow senders open")
    delivered.append("idle/SLOW1")
    slow.stop()

    # frame_timeout: 1s closes slow senders, each logged once; others are served meanwhile.
    slow = SlowSenders("frames", 5, 6)
    check(answered_within("frames", "FRAME1", 2), "answered while slow senders trickle")
    delivered.append("frames/FRAME1")
    start = time.time()
    closed = [closed_within(s, 4) for s in slow.sockets]
    took = time.time() - start
    check(all(closed), "every slow sender is closed (frame_timeout 1s)")
    check(took < 4, f"within the bound ({took:.1f} s)")
    for s in slow.sockets:
        check(len(log_lines(peer_name(s), "frame_timeout")) == 1, f"{peer_name(s)}: frame_timeout logged once")
    slow.stop()

    # max_connections_per_address: 5
    mine = connections("peraddr", 5)
    time.sleep(0.3)
    sixth = socket.create_connection(("127.0.0.1", ports["peraddr"]))
    check(closed_within(sixth, 2), "a sixth connection from 127.0.0.1 is refused")
    check(wait_for(lambda: log_lines("refused", "max_connections_per_address"), timeout=3), "the refusal is logged")
    check(ack_code("peraddr", "OTHER1", 2, source="127.0.0.2") == "AA", "another address is served")
    delivered.append("peraddr/OTHER1")
    mine[0].close()
    time.sleep(0.3)
    check(answered_within("peraddr", "MINE1", 2), "below the limit again, 127.0.0.1 is served")
    delivered.append("peraddr/MINE1")
    for s in mine + [sixth]:
        s.close()

    # TLS: 300 raw TCP connections that never handshake (more than max_connections, 200).
    silent = connections("open", 300)
    time.sleep(0.3)
    check(answered_within("open", "TLS1", 2, tls=True), "a TLS client is answered within 2 s with 300 silent connections open")
    delivered.append("open/TLS1")
    threads = int(subprocess.run(["ps", "-o", "nlwp=", "-p", str(engine.pid)], capture_output=True, text=True).stdout)
    check(threads < 50, f"no thread per connection ({threads} threads)")
    check(wait_for(lambda: all(closed_within(s, 0.01) for s in silent), timeout=5),
          "silent connections are closed (evicted, or after handshake_timeout 2s)")
    check(log_lines("handshake_timeout"), "the handshake timeout is logged")
    for s in silent:
        s.close()

    # verify_client: the CA alone decides; the client's address is no name of its certificate.
    check(ack_code("mutual", "LABA1", 5, tls=True, client="lab-a") == "AA", "lab-a (CN lab-a, from 127.0.0.1) is served")
    check(ack_code("mutual", "LABB1", 5, tls=True, client="lab-b") == "AA", "lab-b is served")
    delivered += ["mutual/LABA1", "mutual/LABB1"]
    check(ack_code("mutual", "STRANGER1", 5, tls=True, client="stranger") is None, "a certificate from another CA is refused")
    check(ack_code("mutual", "NONE1", 5, tls=True) is None, "a client without a certificate is refused")
    check(wait_for(lambda: log_lines("TLS handshake failed"), timeout=3), "the refusals are logged")

    # allowed_names: [lab-a]
    check(ack_code("named", "LABA2", 5, tls=True, client="lab-a") == "AA", "allowed_names: lab-a is served")
    delivered.append("named/LABA2")
    check(ack_code("named", "LABB2", 5, tls=True, client="lab-b") is None, "allowed_names: lab-b is closed")
    check(wait_for(lambda: log_lines("CN=lab-b", "DNS:lab-b.example", "allowed_names"), timeout=3),
          "the log names lab-b's certificate names")

    check(wait_for(lambda: all(os.path.exists(f"{tmp}/out/{d}.hl7") for d in delivered), timeout=10),
          "every message answered is delivered")
    for refused in ["STRANGER1", "NONE1", "LABB2"]:
        check(not any(os.path.exists(f"{tmp}/out/{c}/{refused}.hl7") for c in ports), f"{refused} was not taken in")
    check(engine.poll() is None, "the engine still runs")
finally:
    finish(procs, check, tmp, log="junction.log")
check.exit()
