"""What the workers record for the metrics endpoint: stage durations, retries and failures by
stage and error type, embedder requests and tokens.

Every pool process adds to a few Redis hashes (``CONVERSA_REDIS_URL``, by default the Redis
broker; one pipelined round trip per event), so the exporter (`conversa metrics`) sees the
sum over every worker on every machine without a Pushgateway or a shared folder. Recording
never fails a task: a Redis error is logged and the figure is lost.
"""

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import redis
from celery.signals import task_failure, task_postrun, task_prerun, task_retry

from adapters.celery.topology import STAGE_QUEUES
from adapters.redis.search_metrics import SEARCH_SKIPPED_KEY as REDIS_SEARCH_SKIPPED_KEY

log = logging.getLogger(__name__)

KEY_PREFIX = "conversa:metrics:"
DURATION_KEY = KEY_PREFIX + "stage_seconds"
RETRIES_KEY = KEY_PREFIX + "retries"
FAILURES_KEY = KEY_PREFIX + "failures"
EMBEDDER_KEY = KEY_PREFIX + "embedder"
#: Search candidates skipped for missing or unreadable artifacts, by reason. Search runs in
#: the API and CLI processes too, so it counts through its own port (adapters/redis).
SEARCH_SKIPPED_KEY = REDIS_SEARCH_SKIPPED_KEY
#: What the last scheduled check found, per kind (field: kind), and when (field: last_run).
CHECK_KEY = KEY_PREFIX + "check"
#: CPU seconds of the pool process per stage (field: stage), for bench/corpus.py.
CPU_KEY = KEY_PREFIX + "stage_cpu_seconds"
#: Upper bounds (seconds) of the stage duration histogram's buckets; +Inf is implied.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
SEPARATOR = "|"

_STAGE_OF_TASK = {spec.task_name: spec.stage.value for spec in STAGE_QUEUES.values()}
_started: dict[str, tuple[float, float]] = {}  # task id -> (monotonic, process CPU) at start
_client: "redis.Redis | None" = None
_client_pid: int | None = None


def _redis() -> redis.Redis:
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        from pipeline.settings import load_settings

        _client = redis.Redis.from_url(load_settings().require_redis_url(),
                                       socket_timeout=5, socket_connect_timeout=5)
        _client_pid = os.getpid()
    return _client


def bucket_field(stage: str, upper: float | str) -> str:
    return f"{stage}{SEPARATOR}{upper}"


def record_duration(client: redis.Redis, stage: str, seconds: float,
                    cpu_seconds: float | None = None) -> None:
    bucket = next((str(b) for b in DURATION_BUCKETS if seconds <= b), "+Inf")
    with client.pipeline(transaction=False) as pipe:
        pipe.hincrby(DURATION_KEY, bucket_field(stage, bucket), 1)
        pipe.hincrby(DURATION_KEY, bucket_field(stage, "count"), 1)
        pipe.hincrbyfloat(DURATION_KEY, bucket_field(stage, "sum"), seconds)
        if cpu_seconds is not None:
            pipe.hincrbyfloat(CPU_KEY, stage, cpu_seconds)
        pipe.execute()


def _safely(action: str, *args: Any) -> None:
    try:
        if action == "duration":
            record_duration(_redis(), *args)
        else:
            _redis().hincrby(*args)
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


class MeteredEmbedder:
    """An Embedder that counts its calls and the tokens it was sent, then delegates."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def dimension(self) -> int:
        return int(self._inner.dimension)

    @property
    def model_name(self) -> str:
        return str(self._inner.model_name)

    def generate_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = self._inner.generate_embeddings(texts)
        try:
            tokens = sum(self._inner.count_tokens(text) for text in texts)
            with _redis().pipeline(transaction=False) as pipe:
                pipe.hincrby(EMBEDDER_KEY, "requests", 1)
                pipe.hincrby(EMBEDDER_KEY, "tokens", tokens)
                pipe.hincrby(EMBEDDER_KEY, "texts", len(texts))
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("metrics: could not record an embedder call: %s", exc)
        return vectors


def record_check(counts: dict[str, int]) -> None:
    """Keep what a scheduled check found for the exporter; a Redis error loses the figure."""
    try:
        client = _redis()
        with client.pipeline(transaction=True) as pipe:
            pipe.delete(CHECK_KEY)
            for kind, count in {**counts, "last_run": time.time()}.items():
                pipe.hset(CHECK_KEY, kind, count)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("metrics: could not record the check: %s", exc)

