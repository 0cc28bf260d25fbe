"""What the workers record for the metrics endpoint, and where in Redis: stage durations,
retries and failures by stage and error type, embedder requests and tokens.

The writers are the worker's signal handlers (workers/telemetry.py) and ``MeteredEmbedder``
(in every process that embeds); the reader is the exporter (`conversa metrics`). Every process
adds to a few Redis hashes (one pipelined round trip per event), so the exporter sees the sum
over every worker on every machine. Recording never fails the work: a Redis error is logged
and the figure is lost.
"""

import logging
from collections.abc import Callable, Sequence

import redis

from adapters.per_process import PerProcess
from adapters.ports import Embedder
from adapters.redis.client import per_process_redis
from adapters.redis.search_metrics import SEARCH_SKIPPED_KEY as REDIS_SEARCH_SKIPPED_KEY
from domain.errors import ConfigurationError

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


def metrics_client(url: Callable[[], str]) -> PerProcess[redis.Redis]:
    """A lazy per-process Redis client for recording figures (short timeouts); ``url`` is
    asked for when the client is first needed."""
    return per_process_redis(url, timeout_s=5)


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


class MeteredEmbedder:
    """An Embedder that counts its calls and the tokens it was sent, then delegates."""

    def __init__(self, inner: Embedder, client: PerProcess[redis.Redis]) -> None:
        self._inner = inner
        self._client = client

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    @property
    def dimension(self) -> int:
        return int(self._inner.dimension)

    @property
    def model_name(self) -> str:
        return str(self._inner.model_name)

    @property
    def max_input_tokens(self) -> int:
        return int(self._inner.max_input_tokens)

    def count_tokens(self, text: str) -> int:
        return self._inner.count_tokens(text)

    def generate_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self._inner.generate_embeddings(texts)
        try:
            tokens = sum(self._inner.count_tokens(text) for text in texts)
            with self._client.get().pipeline(transaction=False) as pipe:
                pipe.hincrby(EMBEDDER_KEY, "requests", 1)
                pipe.hincrby(EMBEDDER_KEY, "tokens", tokens)
                pipe.hincrby(EMBEDDER_KEY, "texts", len(texts))
                pipe.execute()
        except (redis.RedisError, ConfigurationError) as exc:  # no Redis: the figure is lost
            log.warning("metrics: could not record an embedder call: %s", exc)
        return vectors
