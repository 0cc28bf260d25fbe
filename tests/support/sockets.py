"""What a process's sockets show of its clients, read from /proc: whether an adapter opened a
connection of its own or reused one, seen from outside the adapter (a client built again in a
forked child opens a connection of its own; the parent's client keeps its connection)."""

import json
import os
from collections.abc import Callable
from urllib.parse import urlsplit


def port_of(url: str) -> int:
    port = urlsplit(url if "//" in url else f"//{url}").port
    assert port is not None, url
    return port


def connections_to(port: int) -> frozenset[int]:
    """The local ports of this process's established TCP connections to ``port``."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    local_ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table) as lines:
                rows = lines.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if inode in inodes and state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                local_ports.add(int(local.rsplit(":", 1)[1], 16))
    return frozenset(local_ports)


def new_connections_in_a_fork(port: int, work: Callable[[], object]) -> frozenset[int]:
    """Run ``work`` in a forked child; the connections to ``port`` that the child opened
    (beyond those it inherited). Raises if ``work`` failed in the child."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            inherited = connections_to(port)
            work()
            answer = {"new": sorted(connections_to(port) - inherited)}
            code = 0
        except BaseException as exc:
            answer = {"error": repr(exc)}
        finally:
            os.write(write_end, json.dumps(answer).encode())
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = json.loads(pipe.read() or b"{}")
    os.waitpid(pid, 0)
    if "new" not in answer:
        raise AssertionError(f"the work failed in the forked child: {answer}")
    return frozenset(answer["new"])
