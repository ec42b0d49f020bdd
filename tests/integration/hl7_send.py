#!/usr/bin/python3
"""`junction hl7 send` against a python3-hl7 asyncio MLLP server.

Run with /usr/bin/python3 (the Debian interpreter with python3-hl7). Needs
JUNCTION_BIN (the junction binary) and JUNCTION_SOURCE_DIR (the source tree).

The server answers AA, or AE for a message whose MSH-10 starts with "REJECT",
and records the raw bytes of every message it receives. A second server accepts
connections and reads, but never answers.
"""
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import hl7
import hl7.mllp

BIN = os.environ.get("JUNCTION_BIN")
SRC = os.environ.get("JUNCTION_SOURCE_DIR")
if not BIN or not SRC:
    sys.exit("hl7_send.py: JUNCTION_BIN and JUNCTION_SOURCE_DIR must be set")
SAMPLES = os.path.join(SRC, "samples", "hl7")

passed = 0
failed = 0


def check(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + what, file=sys.stderr)
        if detail:
            for line in str(detail).splitlines()[:15]:
                print("  | " + line, file=sys.stderr)


# ---------------------------------------------------------------- servers

class Servers:
    """An answering and a silent MLLP server on free loopback ports, run by an
    asyncio loop on a background thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.lock = threading.Lock()
        self.received = []  # raw payload bytes, in arrival order
        self.silent_received = []
        self.errors = []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            sys.exit("hl7_send.py: servers did not start")
        if self.errors:
            sys.exit("hl7_send.py: servers failed to start: %s" % self.errors)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except Exception as e:  # noqa: BLE001
            self.errors.append(repr(e))
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()

    async def _start(self):
        self.server = await hl7.mllp.start_hl7_server(
            self._answering, "127.0.0.1", 0, encoding="latin-1"
        )
        self.silent = await hl7.mllp.start_hl7_server(
            self._silent, "127.0.0.1", 0, encoding="latin-1"
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self.silent_port = self.silent.sockets[0].getsockname()[1]

    async def _answering(self, reader, writer):
        try:
            while not reader.at_eof():
                try:
                    block = await reader.readblock()
                except asyncio.IncompleteReadError:
                    break
                with self.lock:
                    self.received.append(bytes(block))
                msg = hl7.parse(block.decode("latin-1"))
                control_id = str(msg.segment("MSH")(10))
                code = "AE" if control_id.startswith("REJECT") else "AA"
                ack = msg.create_ack(code, message_id="ACK" + control_id)
                writer.writemessage(ack)
                await writer.drain()
        except Exception as e:  # noqa: BLE001
            with self.lock:
                self.errors.append(repr(e))
        finally:
            writer.close()

    async def _silent(self, reader, writer):
        try:
            while not reader.at_eof():
                try:
                    block = await reader.readblock()
                except asyncio.IncompleteReadError:
                    break
                with self.lock:
                    self.silent_received.append(bytes(block))
        except Exception as e:  # noqa: BLE001
            with self.lock:
                self.errors.append(repr(e))
        finally:
            writer.close()

    def take(self):
        """The messages received since the last call."""
        with self.lock:
            got, self.received = self.received, []
        return got

    def stop(self):
        def _close():
            self.server.close()
            self.silent.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(_close)
        self.thread.join(5)


# ---------------------------------------------------------------- helpers

def run(*args, timeout=60):
    t0 = time.monotonic()
    p = subprocess.run([BIN, "hl7", "send", *args], capture_output=True, timeout=timeout)
    p.elapsed = time.monotonic() - t0
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    return p


def describe(p):
    return "exit %s\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.out, p.err)


def segments(data):
    """Segments of a message or file: CR, LF or CRLF separated, blank lines dropped."""
    text = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    return [s for s in text.split(b"\r") if s.strip()]


def expected_messages(path):
    """Messages in a file: split at MSH, envelope segments (FHS/BHS/BTS/FTS) dropped."""
    with open(path, "rb") as f:
        data = f.read()
    messages = []
    for seg in segments(data):
        if seg[:3] in (b"FHS", b"BHS", b"BTS", b"FTS"):
            continue
        if seg.startswith(b"MSH"):
            messages.append([])
        if messages:
            messages[-1].append(seg)
    return messages


def control_id(segs):
    msh = segs[0]
    return msh.split(msh[3:4])[9].decode("latin-1")


def check_received(servers, path, what):
    want = expected_messages(path)
    got = servers.take()
    check(len(got) == len(want), "%s: server received %d messages, expected %d" % (what, len(got), len(want)))
    for i, (g, w) in enumerate(zip(got, want)):
        check(b"\n" not in g, "%s: message %d sent with LF bytes" % (what, i + 1), repr(g[:200]))
        check(g.endswith(b"\r"), "%s: message %d does not end with CR" % (what, i + 1), repr(g[-50:]))
        check(segments(g) == w, "%s: message %d differs from the file" % (what, i + 1),
              "got:  %r\nwant: %r" % (segments(g), w))
    return got


def free_closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # never listened: connections are refused
    return port


# ---------------------------------------------------------------- tests

def main():
    if not os.access(BIN, os.X_OK):
        sys.exit("hl7_send.py: %s is not executable" % BIN)
    servers = Servers()
    target = "127.0.0.1:%d" % servers.port
    tmp = tempfile.TemporaryDirectory()
    try:
        nw = os.path.join(SAMPLES, "orm_o01_nw.hl7")
        batch = os.path.join(SAMPLES, "batch.hl7")

        # One message: AA, ACK printed.
        p = run(target, nw)
        check(p.returncode == 0, "send orm_o01_nw.hl7: exit 0", describe(p))
        check("MSA|AA|" in p.out, "send orm_o01_nw.hl7: ACK printed", describe(p))
        check("\r" not in p.out, "ACK printed one segment per line (no CR)", repr(p.out))
        got = check_received(servers, nw, "orm_o01_nw.hl7")
        if got:
            cid = control_id(segments(got[0]))
            check("MSA|AA|" + cid in p.out, "ACK for MSH-10 %s printed" % cid, describe(p))

        # A batch: three messages, envelope dropped.
        p = run(target, batch)
        check(p.returncode == 0, "send batch.hl7: exit 0", describe(p))
        check(p.out.count("MSA|AA|") == 3, "send batch.hl7: three ACKs printed", describe(p))
        check_received(servers, batch, "batch.hl7")
        check(len(expected_messages(batch)) == 3, "batch.hl7 holds three messages")

        # Several files in one call, --quiet.
        p = run(target, nw, batch, "--quiet")
        check(p.returncode == 0, "send two files --quiet: exit 0", describe(p))
        check("MSA|" not in p.out, "--quiet prints no ACK", describe(p))
        check(len(servers.take()) == 4, "two files: four messages received")

        # LF and CRLF separated input is sent with CR separators.
        with open(nw, "rb") as f:
            nw_bytes = f.read()
        for name, sep in (("lf.hl7", b"\n"), ("crlf.hl7", b"\r\n")):
            path = os.path.join(tmp.name, name)
            with open(path, "wb") as f:
                f.write(sep.join(segments(nw_bytes)) + sep)
            p = run(target, path)
            check(p.returncode == 0, "send %s: exit 0" % name, describe(p))
            check_received(servers, path, name)

        # Several messages without batch envelope, separated by blank lines.
        path = os.path.join(tmp.name, "two.hl7")
        with open(path, "wb") as f:
            f.write(nw_bytes + b"\n\n" + nw_bytes.replace(b"|ORM^O01|", b"|ORM^O01|2", 1))
        p = run(target, path)
        check(p.returncode == 0, "send two messages in one file: exit 0", describe(p))
        check_received(servers, path, "two.hl7")

        # AE for MSH-10 REJECT...: exit 1.
        segs = segments(nw_bytes)
        fs = segs[0][3:4]
        msh = segs[0].split(fs)
        msh[9] = b"REJECT0001"
        reject = os.path.join(tmp.name, "reject.hl7")
        with open(reject, "wb") as f:
            f.write(b"\r".join([fs.join(msh)] + segs[1:]) + b"\r")
        p = run(target, reject)
        check(p.returncode == 1, "send REJECT message: exit 1", describe(p))
        check("MSA|AE|REJECT0001" in p.out, "AE ACK printed", describe(p))
        check("AE" in p.err, "AE reported on stderr", describe(p))
        check(len(servers.take()) == 1, "REJECT message received once")

        # An AE in the middle: the other messages are still sent, exit 1.
        p = run(target, nw, reject, batch)
        check(p.returncode == 1, "AE among AAs: exit 1", describe(p))
        check(len(servers.take()) == 5, "AE among AAs: all five messages sent")

        # Connection refused.
        port = free_closed_port()
        p = run("127.0.0.1:%d" % port, nw)
        check(p.returncode == 1, "closed port: exit 1", describe(p))
        check("127.0.0.1:%d" % port in p.err and "refused" in p.err,
              "closed port: 'HOST:PORT: connection refused' on stderr", describe(p))
        check(p.elapsed < 10, "closed port: fails quickly (%.1fs)" % p.elapsed)

        # Server that accepts but never answers.
        p = run("127.0.0.1:%d" % servers.silent_port, nw, "--timeout", "1")
        check(p.returncode == 1, "silent server --timeout 1: exit 1", describe(p))
        check(p.elapsed < 5, "silent server --timeout 1: gave up after %.1fs" % p.elapsed, describe(p))
        check(p.err.strip() != "", "silent server: error on stderr", describe(p))
        time.sleep(0.2)
        with servers.lock:
            check(len(servers.silent_received) == 1, "silent server received the message",
                  servers.silent_received)

        # Unreadable file: exit 1, named on stderr.
        missing = os.path.join(tmp.name, "does-not-exist.hl7")
        p = run(target, missing)
        check(p.returncode == 1, "missing file: exit 1", describe(p))
        check("does-not-exist.hl7" in p.err, "missing file named on stderr", describe(p))

        # Usage errors: exit 2; --help: exit 0.
        for args in ((), (target,), ("no-port", nw), (target, nw, "--timeout"),
                     (target, nw, "--timeout", "abc"), (target, nw, "--bogus")):
            p = run(*args)
            check(p.returncode == 2, "usage error %r: exit 2" % (args,), describe(p))
        p = run("--help")
        check(p.returncode == 0 and "usage: junction hl7 send" in p.out, "--help: usage, exit 0", describe(p))

        with servers.lock:
            check(not servers.errors, "server raised no errors", servers.errors)
    finally:
        servers.stop()
        tmp.cleanup()

    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
