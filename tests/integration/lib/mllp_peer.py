"""An MLLP receiver for the Python integration tests (this folder is not run as
a test): answers every message with AA echoing its MSH-10, counts each
MSH-10 it received and keeps the last message of each, in a thread of its own."""
import asyncio
import threading


def retrying_channel(port, peer, name="a"):
    """A channel file's text: MLLP in on `port`, one MLLP destination `ris` to
    `peer` retried every 100-200 ms (for tests of a destination's outage)."""
    return f"""channel: {name}
source: {{ type: mllp, port: {port}, host: 127.0.0.1 }}
destinations:
  - name: ris
    type: mllp
    host: 127.0.0.1
    port: {peer}
    connect_timeout: 1s
    retry: {{ attempts: 1000, backoff: 100ms, max_backoff: 200ms }}
"""


class Receiver:
    def __init__(self, port):
        self.port = port
        self.received = {}  # MSH-10 -> times received
        self.last = {}  # MSH-10 -> the last message received with it (segments CR-separated)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._run, daemon=True).start()

    def ids(self):
        with self._lock:
            return set(self.received)

    def duplicates(self):
        with self._lock:
            return sum(n - 1 for n in self.received.values())

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._loop.run_forever()

    async def _serve(self, reader, writer):
        buf = b""
        while True:
            try:
                data = await reader.read(65536)
            except ConnectionError:  # the engine went away mid-connection
                break
            if not data:
                break
            buf += data
            while (end := buf.find(b"\x1c\r")) >= 0:
                frame, buf = buf[:end], buf[end + 2:]
                cid = frame[frame.find(b"\x0b") + 1:].decode("latin-1").split("\r", 1)[0].split("|")[9]
                with self._lock:
                    self.received[cid] = self.received.get(cid, 0) + 1
                    self.last[cid] = frame[frame.find(b"\x0b") + 1:].decode("latin-1")
                writer.write(f"\x0bMSH|^~\\&|RCV|RCV|||20260101||ACK|A{cid}|P|2.5\rMSA|AA|{cid}\r\x1c\r".encode())
            try:
                await writer.drain()
            except ConnectionError:
                break
        writer.close()
