"""The worker's signal handlers that record stage durations, retries and failures by stage and
error type for the metrics endpoint (the layout in Redis: adapters/redis/worker_metrics.py).

Recording never fails a task: a Redis error is logged and the figure is lost.
"""

import logging
import time
from typing import Any

import redis
from celery.signals import task_failure, task_postrun, task_prerun, task_retry

from adapters.celery.topology import STAGE_QUEUES
from adapters.redis.worker_metrics import (
    CHECK_KEY,
    FAILURES_KEY,
    RETRIES_KEY,
    SEPARATOR,
    metrics_client,
    record_duration,
)
from pipeline.settings import process_settings

log = logging.getLogger(__name__)

_STAGE_OF_TASK = {spec.task_name: spec.stage.value for spec in STAGE_QUEUES.values()}
_started: dict[str, tuple[float, float]] = {}  # task id -> (monotonic, process CPU) at start
_client = metrics_client(lambda: process_settings().require_redis_url())


def _safely(action: str, *args: Any) -> None:
    try:
        if action == "duration":
            record_duration(_client.get(), *args)
        else:
            _client.get().hincrby(*args)
    except redis.RedisError as exc:
        log.warning("metrics: could not record a %s: %s", action, exc)


@task_prerun.connect
def _on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id and getattr(task, "name", None) in _STAGE_OF_TASK:
        _started[task_id] = (time.monotonic(), time.process_time())


@task_postrun.connect
def _on_postrun(task_id: str | None = None, task: Any = None, state: str | None = None,
                **_: Any) -> None:
    started = _started.pop(task_id or "", None)
    stage = _STAGE_OF_TASK.get(getattr(task, "name", ""))
    if started is not None and stage is not None and state == "SUCCESS":
        _safely("duration", stage, time.monotonic() - started[0],
                time.process_time() - started[1])


@task_retry.connect
def _on_retry(sender: Any = None, reason: Any = None, **_: Any) -> None:
    stage = _STAGE_OF_TASK.get(getattr(sender, "name", ""))
    if stage is not None:
        cause = getattr(reason, "exc", None) or reason  # celery's Retry wraps the error
        _safely("retry", RETRIES_KEY, f"{stage}{SEPARATOR}{_error_type(cause)}", 1)


@task_failure.connect
def _on_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    stage = _STAGE_OF_TASK.get(getattr(sender, "name", ""))
    if stage is not None:
        _safely("failure", FAILURES_KEY, f"{stage}{SEPARATOR}{_error_type(exception)}", 1)


def _error_type(error: Any) -> str:
    if isinstance(error, BaseException):
        return type(error).__name__
    return "unknown"


def record_check(counts: dict[str, int]) -> None:
    """Keep what a scheduled check found for the exporter; a Redis error loses the figure."""
    try:
        with _client.get().pipeline(transaction=True) as pipe:
            pipe.delete(CHECK_KEY)
            for kind, count in {**counts, "last_run": time.time()}.items():
                pipe.hset(CHECK_KEY, kind, count)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("metrics: could not record the check: %s", exc)
