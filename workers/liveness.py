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
from pathlib import Path
from typing import Any

from celery import bootsteps
from celery.signals import task_received
from celery.worker import state

from adapters.celery.liveness import safe_name, state_dir
from pipeline.settings import process_settings

WRITE_EVERY_SECONDS = 2.0

_last_received: float | None = None


@task_received.connect
def _note_received(**_: Any) -> None:
    global _last_received
    _last_received = time.time()


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
        if self._queues is None:  # the queues it was started with, before any cancel
            self._queues = sorted(parent.app.amqp.queues.consume_from)
        directory = state_dir(process_settings().data_dir.resolve())
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / f"{safe_name(parent.hostname)}.json"
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
