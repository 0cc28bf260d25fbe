"""Throwaway local servers for tests: a fresh port, a temporary folder, stopped afterwards."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import Popen

from localstack.servers import ServerError, free_port, start_mongo, start_valkey, stop_process

#: How many fresh ports to try when another program grabs the one we picked.
PORT_TRIES = 3


def _start_on_free_port(start: Callable[[int], Popen[bytes]]) -> tuple[Popen[bytes], int]:
    for attempt in range(1, PORT_TRIES + 1):
        port = free_port()
        try:
            return start(port), port
        except ServerError:
            if attempt == PORT_TRIES:
                raise
    raise AssertionError("unreachable")


@contextmanager
def valkey_server(workdir: Path, *, appendonly: bool = False) -> Iterator[str]:
    """A valkey-server in ``workdir`` (no persistence unless asked); yields its redis:// URL."""
    proc, port = _start_on_free_port(
        lambda port: start_valkey(port, workdir / "data", workdir / "valkey.log", appendonly))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)


@contextmanager
def mongo_server(workdir: Path) -> Iterator[str]:
    """A secantusd storing in ``workdir``; yields its mongodb:// URL."""
    proc, port = _start_on_free_port(
        lambda port: start_mongo(port, workdir / "data", workdir / "secantusd.log"))
    try:
        yield f"mongodb://127.0.0.1:{port}/"
    finally:
        stop_process(proc)
