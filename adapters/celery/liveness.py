"""The worker liveness files and their reader: what ``conversa probe`` judges.

A consumer bootstep of each worker (workers/liveness.py) writes
``<data dir>/workers/<hostname>.json`` every few seconds from the consumer's own event loop;
the probe reads every such file of this machine and the broker's queue depths, and fails a
worker whose consumer loop is silent or that has stopped taking waiting messages (the
reasoning is in workers/liveness.py).
"""

import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.processes import signal_answers

STATE_DIR_NAME = "workers"


def state_dir(data_dir: Path) -> Path:
    return data_dir / STATE_DIR_NAME


def safe_name(hostname: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in hostname)


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
        if record.get("host") == socket.gethostname() and not signal_answers(int(record["pid"])):
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
