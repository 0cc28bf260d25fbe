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
from urllib.parse import parse_qs, urlsplit

from tests.support.loopback_http import KeepAliveHandler, LoopbackHttpServer


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


class _Handler(KeepAliveHandler):
    @property
    def state(self) -> ServerState:
        return self.server.owner.state  # type: ignore[no-any-return]

    def _record(self) -> Recorded:
        recorded = Recorded(self.command, self.path, {k.lower(): v for k, v in
                                                      self.headers.items()}, self.read_body())
        with self.state.lock:
            self.state.requests.append(recorded)
        return recorded

    def do_GET(self) -> None:
        self._record()
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        if path.startswith("/files/") and path.removeprefix("/files/") in self.state.files:
            self.send_body(200, self.state.files[path.removeprefix("/files/")],
                         {"Content-Type": "text/markdown"})
        elif path == "/redirect":
            self.send_body(302, headers={"Location": query["to"]})
        elif path == "/loop":
            self.send_body(302, headers={"Location": "/loop"})
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
            self.send_body(200, b"late")
        elif path.startswith("/status/"):
            self.send_body(int(path.removeprefix("/status/")), b"status")
        else:
            self.send_body(404, b"no such file")

    def do_POST(self) -> None:
        self._record()
        state = self.state
        with state.lock:
            failing = state.fail_next > 0 and state.fail_path in (None, self.path)
            if failing:
                state.fail_next -= 1
        self.send_body(state.fail_status if failing else 200, b"ok")


class _Server(LoopbackHttpServer):
    handler = _Handler
    thread_name = "http-server"

    def __init__(self, host: str, state: ServerState) -> None:
        super().__init__(host)
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
    with _Server(host, state) as server:
        yield RunningServer(server.origin, state)
