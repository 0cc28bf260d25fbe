"""The scaffolding every HTTP server of the tests shares (the fake OpenAI, the fake Pinecone,
the file server and callback receiver, the fault proxy): a threading server on a free
loopback port, served by a daemon thread until stopped, quiet about clients that hang up;
and a keep-alive handler without Nagle's delay that reads a request's body and sends an
answer.

A handler reaches the object that runs it (the fake, with its state) as ``self.server.owner``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: Any = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client drops its keep-alive connection; report anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class KeepAliveHandler(BaseHTTPRequestHandler):
    server: LoopbackServer
    protocol_version = "HTTP/1.1"
    # Without this every answer waits ~40 ms for the client's delayed ACK (Nagle).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests read the records instead."""

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_body(self, status: int, payload: bytes = b"",
                  headers: Mapping[str, str] | None = None) -> None:
        """Answer ``status`` with ``payload``; a client that gave up (a slow answer) is told
        nothing."""
        with suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    def send_json(self, status: int, body: object,
                  headers: Mapping[str, str] | None = None) -> None:
        self.send_body(status, json.dumps(body).encode(),
                       {"Content-Type": "application/json", **(headers or {})})


class LoopbackHttpServer:
    """Serves ``handler`` on a free port of ``bind`` from ``start()`` (or ``with``) to
    ``stop()``; subclasses set ``handler`` and ``thread_name``."""

    handler: ClassVar[type[BaseHTTPRequestHandler]]
    thread_name: ClassVar[str] = "loopback-http"
    server_class: ClassVar[type[LoopbackServer]] = LoopbackServer

    def __init__(self, bind: str = "127.0.0.1") -> None:
        self._bind = bind
        self._server: LoopbackServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        server = self.server_class((self._bind, 0), self.handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=self.thread_name,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        """``http://host:port``."""
        return f"http://{self._bind}:{self.port}"
