"""Small real HTTP servers on loopback for the URL fetcher and the callbacks.

``FileServer`` serves documents and the awkward answers a fetcher must survive: redirects
(one, or a loop), a body longer than it says or with no length at all, a slow answer, any
status. ``Receiver`` records the callbacks POSTed to it and can be told to fail the first N.
Both bind port 0 (the OS picks a free port) and record every request they get.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    #: Answer this status to the next N requests (callbacks), then 200.
    fail_next: int = 0
    fail_status: int = 503
    #: Only requests to this path fail (None: any path).
    fail_path: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _record(self) -> Recorded:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        recorded = Recorded(self.command, self.path, {k.lower(): v for k, v in
                                                      self.headers.items()}, body)
        with self.server.state.lock:
            self.server.state.requests.append(recorded)
        return recorded

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
                ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._record()
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        if path.startswith("/files/") and path.removeprefix("/files/") in self.server.state.files:
            self._answer(200, self.server.state.files[path.removeprefix("/files/")],
                         {"Content-Type": "text/markdown"})
        elif path == "/redirect":
            self._answer(302, headers={"Location": query["to"]})
        elif path == "/loop":
            self._answer(302, headers={"Location": "/loop"})
        elif path == "/endless":  # no Content-Length: chunk after chunk
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            block = b"x" * 65536
            try:
                for _ in range(int(query.get("blocks", "1000"))):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif path == "/declared-large":
            self.send_response(200)
            self.send_header("Content-Length", query["size"])
            self.end_headers()
        elif path == "/slow":
            time.sleep(float(query.get("seconds", "2")))
            self._answer(200, b"late")
        elif path.startswith("/status/"):
            self._answer(int(path.removeprefix("/status/")), b"status")
        else:
            self._answer(404, b"no such file")

    def do_POST(self) -> None:
        self._record()
        state = self.server.state
        with state.lock:
            failing = state.fail_next > 0 and state.fail_path in (None, self.path)
            if failing:
                state.fail_next -= 1
        self._answer(state.fail_status if failing else 200, b"ok")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, state: ServerState) -> None:
        super().__init__((host, 0), _Handler)
        self.state = state


@dataclass
class RunningServer:
    url: str
    state: ServerState

    @property
    def requests(self) -> list[Recorded]:
        with self.state.lock:
            return list(self.state.requests)


@contextmanager
def http_server(host: str = "127.0.0.1", files: dict[str, bytes] | None = None
                ) -> Iterator[RunningServer]:
    """A FileServer/Receiver on ``host`` until the block ends."""
    state = ServerState(files=dict(files or {}))
    server = _Server(host, state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningServer(f"http://{host}:{server.server_address[1]}", state)
    finally:
        server.shutdown()
        server.server_close()
