"""A fault-injecting HTTP reverse proxy for tests: put it between a client and a real server
(moto's S3, say) and make the next requests fail with a status, or answer slowly.

Every request is forwarded whole to the upstream server over a fresh connection, and its answer
is passed back (a HEAD answer keeps its Content-Length and has no body). Faults are queued:
:meth:`FaultProxy.fail_next` answers the next N requests with a status and an S3-shaped XML
error without forwarding them; :meth:`FaultProxy.slow_next` forwards the next N requests but
holds each answer back for a while; :meth:`FaultProxy.fail_for` fails every request for a
number of seconds. Only loopback addresses are served and forwarded to.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.support.loopback_http import KeepAliveHandler, LoopbackHttpServer, LoopbackServer

#: The error codes S3 answers with for each status (botocore retries 500 and 503).
S3_ERROR_CODES = {500: "InternalError", 503: "SlowDown", 429: "SlowDown"}
#: Headers that describe one hop of the connection, never forwarded.
HOP_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                         "te", "trailer", "upgrade", "expect", "content-length"})
UPSTREAM_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class _Fault:
    status: int | None  # None: forward, but late
    delay: float = 0.0


class FaultProxy(LoopbackHttpServer):
    """A reverse proxy to ``upstream`` (``http://127.0.0.1:P``) on a free loopback port."""

    thread_name = "fault-proxy"

    def __init__(self, upstream: str) -> None:
        super().__init__()
        parts = urlsplit(upstream)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the proxy forwards to loopback only, not {upstream}")
        self._upstream = (parts.hostname, parts.port or 80)
        self._faults: deque[_Fault] = deque()
        self._storm: tuple[float, int] | None = None  # (until monotonic, status)
        self._lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return self.origin

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next ``count`` requests with ``status`` without forwarding them."""
        with self._lock:
            self._faults.extend(_Fault(status) for _ in range(count))

    def slow_next(self, count: int, seconds: float) -> None:
        """Forward the next ``count`` requests, each answer held back ``seconds``."""
        with self._lock:
            self._faults.extend(_Fault(None, seconds) for _ in range(count))

    def fail_for(self, seconds: float, status: int = 503) -> None:
        """Answer every request with ``status`` for the next ``seconds``."""
        with self._lock:
            self._storm = (time.monotonic() + seconds, status)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._storm = None

    def pending(self) -> int:
        """Queued faults not yet served."""
        with self._lock:
            return len(self._faults)

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            if self._storm is not None:
                until, status = self._storm
                if time.monotonic() < until:
                    return _Fault(status)
                self._storm = None
            return self._faults.popleft() if self._faults else None

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1


class _Server(LoopbackServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (killed mid-request) is what chaos tests do: no traceback."""


class _Handler(KeepAliveHandler):
    """Keep-alive for the client, and 100-continue answered."""

    @property
    def proxy(self) -> FaultProxy:
        return self.server.owner  # type: ignore[no-any-return]

    def do_GET(self) -> None:
        self._relay()

    def do_HEAD(self) -> None:
        self._relay()

    def do_PUT(self) -> None:
        self._relay()

    def do_POST(self) -> None:
        self._relay()

    def do_DELETE(self) -> None:
        self._relay()

    def _relay(self) -> None:
        body = self._read_body()
        fault = self.proxy._next_fault()
        if fault is not None and fault.status is not None:
            self.proxy._count(f"injected {fault.status}")
            self._send_error(fault.status)
            return
        headers = {name: value for name, value in self.headers.items()
                   if name.lower() not in HOP_HEADERS}
        host, port = self.proxy._upstream
        connection = http.client.HTTPConnection(host, port, timeout=UPSTREAM_TIMEOUT_S)
        try:
            connection.request(self.command, self.path, body=body or None, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
            status, answer_headers = answer.status, answer.getheaders()
        except OSError:
            self.proxy._count("upstream unreachable")
            self._send_error(502)
            return
        finally:
            connection.close()
        if fault is not None:
            self.proxy._count("slowed")
            time.sleep(fault.delay)
        else:
            self.proxy._count("forwarded")
        self.send_response(status)
        declared = None
        for name, value in answer_headers:
            if name.lower() == "content-length":
                declared = value
            elif name.lower() not in HOP_HEADERS:
                self.send_header(name, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", declared or "0")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_error(self, status: int) -> None:
        code = S3_ERROR_CODES.get(status, "InternalError")
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>injected by the fault proxy</Message></Error>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        if status in (429, 503):
            self.send_header("Retry-After", "1")
        if self.command == "HEAD":
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


FaultProxy.handler = _Handler
FaultProxy.server_class = _Server
