"""Worker liveness that sees more than a live process: a worker whose consumer stopped taking
messages (a known Celery failure after a broker reconnect) is reported dead.

Inside the worker, a consumer bootstep writes a small state file every few seconds from the
consumer's own event loop: when the loop stalls, the file goes stale. It records when the
worker last received a task message, how many it holds and how many it can hold. The probe
(``conversa probe``, run by the orchestrator in the worker's container) fails when

- the state file is older than ``stale_after`` seconds (the consumer's loop is stuck), or
- the worker has free pool slots, messages are waiting on its queues, and it has received
  nothing for ``stalled_after`` seconds (alive, but no longer consuming).

A worker that is busy (every slot taken) or idle on empty queues passes.
References: https://github.com/celery/celery/issues/8030 (no consumption after a reconnect);
https://github.com/celery/celery/issues/3955 (probe files belong to the consumer, not the worker).
"""

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import bootsteps
from celery.signals import task_received
from celery.worker import state

WRITE_EVERY_SECONDS = 2.0
STATE_DIR_NAME = "workers"

_last_received: float | None = None


@task_received.connect
def _note_received(**_: Any) -> None:
    global _last_received
    _last_received = time.time()


def state_dir(data_dir: Path) -> Path:
    return data_dir / STATE_DIR_NAME


def _safe(hostname: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in hostname)


class LivenessStep(bootsteps.StartStopStep):
    """Writes ``<data dir>/workers/<hostname>.json`` from the consumer's timer."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._timer_entry: Any = None
        self._queues: list[str] | None = None
        self._started_at = time.time()
        self._path: Path | None = None

    def start(self, parent: Any) -> None:
        from pipeline.settings import load_settings

        if self._queues is None:  # the queues it was started with, before any cancel
            self._queues = sorted(parent.app.amqp.queues.consume_from)
        directory = state_dir(load_settings().data_dir.resolve())
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / f"{_safe(parent.hostname)}.json"
        self._write(parent)
        self._timer_entry = parent.timer.call_repeatedly(
            WRITE_EVERY_SECONDS, self._write, (parent,), priority=10)

    def stop(self, parent: Any) -> None:
        if self._timer_entry is not None:
            self._timer_entry.cancel()
            self._timer_entry = None

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)
        if self._path is not None:
            self._path.unlink(missing_ok=True)

    def _write(self, parent: Any) -> None:
        if self._path is None:
            return
        record = {
            "hostname": parent.hostname,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "queues": self._queues,
            "concurrency": parent.controller.concurrency,
            "reserved": len(state.reserved_requests),
            "started_at": self._started_at,
            "last_received": _last_received,
            "written_at": time.time(),
        }
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self._path)


@dataclass(frozen=True)
class Verdict:
    hostname: str
    ok: bool
    reason: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.hostname}: {self.reason}"


def judge(record: dict[str, Any], waiting: int, now: float, *, stale_after: float,
          stalled_after: float) -> Verdict:
    """The verdict on one worker's state, given the messages waiting on its queues."""
    hostname = str(record.get("hostname"))
    age = now - float(record["written_at"])
    if age > stale_after:
        return Verdict(hostname, False, f"consumer loop silent for {age:.0f} s")
    reserved, concurrency = int(record["reserved"]), int(record["concurrency"])
    last = record.get("last_received") or record["started_at"]
    idle = now - float(last)
    if waiting and reserved < concurrency and idle > stalled_after:
        return Verdict(hostname, False,
                       f"{waiting} messages wait on its queues, {concurrency - reserved} free "
                       f"slots, nothing received for {idle:.0f} s: not consuming")
    return Verdict(hostname, True, f"consuming ({reserved}/{concurrency} busy, {waiting} "
                   f"waiting, last message {idle:.0f} s ago)")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def probe(data_dir: Path, broker_url: str, *, hostname: str | None = None,
          stale_after: float = 30.0, stalled_after: float = 60.0) -> list[Verdict]:
    """Judge every worker of this machine (or the one named); no worker at all is a failure."""
    from adapters.celery.broker_counts import queue_depths

    records = []
    for path in sorted(state_dir(data_dir.resolve()).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if hostname is not None and record.get("hostname") != hostname:
            continue
        if record.get("host") == socket.gethostname() and not _pid_alive(int(record["pid"])):
            continue  # a worker that has exited; its supervisor restarts it
        records.append(record)
    if not records:
        return [Verdict(hostname or "workers", False,
                        f"no running worker found under {state_dir(data_dir)}")]
    verdicts = []
    for record in records:  # the broker's own counts: Redis lists or RabbitMQ's declare-ok
        depths = queue_depths(broker_url, record["queues"])
        waiting = sum(depth.waiting for depth in depths)
        verdicts.append(judge(record, waiting, time.time(), stale_after=stale_after,
                              stalled_after=stalled_after))
    return verdicts
