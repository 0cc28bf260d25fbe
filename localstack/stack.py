"""`conversa up` / `conversa down`: the whole pipeline on one machine, data in one folder.

Runs, on loopback, a Valkey server (persisting with AOF), a MongoDB-wire server
(SecantusDB), Celery workers for every queue, Celery beat (reconciler, index compaction)
and Flower, each as its own background process
with its log under ``<data dir>/logs``. ``stack.json`` in the data folder records their
addresses and pids, so every other command (and ``down``) finds them.
"""

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from adapters.processes import signal_answers
from domain.errors import ConversaError
from localstack import servers
from localstack.flower import flower_command
from pipeline.settings import STACK_FILE, Settings

WORKER_READY_TIMEOUT = 120.0
WORKER_STOP_TIMEOUT = 60.0


def _stack_path(data_dir: Path) -> Path:
    return data_dir / STACK_FILE


def _alive(pid: int) -> bool:
    return signal_answers(pid) and not servers.is_zombie(pid)


def _read(data_dir: Path) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = json.loads(_stack_path(data_dir).read_text())
    except (OSError, ValueError):
        return {}
    return loaded


def _write(data_dir: Path, stack: dict[str, Any]) -> None:
    path = _stack_path(data_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stack, indent=2))
    os.replace(tmp, path)


def running(settings: Settings) -> dict[str, Any]:
    """The running stack's description, or {} when none (or only a dead one) is recorded."""
    stack = _read(settings.data_dir.resolve())
    pids = stack.get("pids", {})
    if pids and all(_alive(int(pid)) for pid in pids.values()):
        return stack
    return {}


def up(settings: Settings) -> dict[str, Any]:
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if running(settings):
        raise ConversaError(f"a local stack is already running under {data_dir}; "
                            "stop it with `conversa down`")
    if _read(data_dir):
        down(settings)  # a stale stack file, or a stack that half-died: clear what is left
    logs = data_dir / "logs"
    started: dict[str, int] = {}
    stack: dict[str, Any] = {"data_dir": str(data_dir), "pids": started}
    try:
        redis_port = servers.free_port()
        started["valkey"] = servers.start_valkey(
            redis_port, data_dir / "redis", logs / "valkey.log", appendonly=True).pid
        stack["broker_url"] = f"redis://127.0.0.1:{redis_port}/0"
        stack["result_backend"] = f"redis://127.0.0.1:{redis_port}/1"
        mongo_port = servers.free_port()
        started["mongodb"] = servers.start_mongo(
            mongo_port, data_dir / "mongodb", logs / "mongodb.log").pid
        stack["mongo_url"] = f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true"
        _write(data_dir, stack)

        env = {**os.environ, "CONVERSA_DATA_DIR": str(data_dir)}
        worker_log = logs / "worker.log"
        log_offset = worker_log.stat().st_size if worker_log.exists() else 0
        started["worker"] = servers.spawn(
            [sys.executable, "-m", "celery", "-A", "workers", "worker", "-E",
             "-c", str(settings.local.worker_concurrency), "-n", "local@%h",
             "--loglevel", "INFO", "-Q", ",".join(_queues())],
            worker_log, env).pid
        started["beat"] = servers.spawn(
            [sys.executable, "-m", "celery", "-A", "workers", "beat", "--loglevel", "INFO",
             "-s", str(data_dir / "beat-schedule")],
            logs / "beat.log", env).pid
        flower_port = settings.local.flower_port or servers.free_port()
        if not _port_free(flower_port):
            flower_port = servers.free_port()
        flower_argv, flower_env = flower_command(settings, "127.0.0.1", flower_port)
        started["flower"] = servers.spawn(
            flower_argv, logs / "flower.log",
            {**flower_env, "CONVERSA_DATA_DIR": str(data_dir)}).pid
        stack["flower_url"] = f"http://127.0.0.1:{flower_port}"
        api_port = settings.api.port or servers.free_port()
        if not _port_free(api_port):
            api_port = servers.free_port()
        started["api"] = servers.spawn(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--factory",
             "--host", "127.0.0.1", "--port", str(api_port), "--no-server-header"],
            logs / "api.log", env).pid
        stack["api_url"] = f"http://127.0.0.1:{api_port}"
        _write(data_dir, stack)
        _wait_for_worker(started["worker"], worker_log, log_offset)
        servers.wait_for_port("127.0.0.1", flower_port, 60, log_path=logs / "flower.log")
        servers.wait_for_port("127.0.0.1", api_port, 60, log_path=logs / "api.log")
    except BaseException:
        _write(data_dir, stack)
        down(settings)
        raise
    return stack


def down(settings: Settings) -> list[str]:
    """Stop what the stack file names, newest first; remove the file."""
    data_dir = settings.data_dir.resolve()
    stack = _read(data_dir)
    stopped = []
    for name in ("api", "flower", "beat", "worker", "mongodb", "valkey"):
        pid = stack.get("pids", {}).get(name)
        if pid is None or not _alive(int(pid)):
            continue
        timeout = WORKER_STOP_TIMEOUT if name == "worker" else servers.STOP_TIMEOUT
        servers.stop_process(int(pid), timeout=timeout)
        stopped.append(name)
    _stack_path(data_dir).unlink(missing_ok=True)
    return stopped


def _queues() -> list[str]:
    from adapters.celery.topology import ALL_QUEUES

    return list(ALL_QUEUES)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for_worker(pid: int, log_path: Path, offset: int) -> None:
    """Until the worker logs that it is ready (its pool processes are up and warm)."""
    deadline = time.monotonic() + WORKER_READY_TIMEOUT
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise ConversaError("the worker exited during start-up:\n"
                                + servers.log_tail(log_path))
        if log_path.exists() and b" ready." in log_path.read_bytes()[offset:]:
            return
        time.sleep(0.2)
    raise ConversaError(f"the worker was not ready within {WORKER_READY_TIMEOUT:.0f} s; "
                        f"see {log_path}")
