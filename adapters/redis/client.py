"""The per-process redis-py client every Redis adapter holds (a socket must not cross a fork,
and no client is built at import time), and the base of the adapters that only record figures.
"""

from collections.abc import Callable

import redis

from adapters.per_process import PerProcess


def per_process_redis(url: str | Callable[[], str], *, timeout_s: float | None,
                      connect_timeout_s: float | None = None) -> PerProcess[redis.Redis]:
    """A lazy per-process client of the Redis at ``url`` (a callable is asked for the URL
    when the client is first needed). ``timeout_s`` bounds every command (None: a blocking
    read may wait as long as it asks); the connection's own timeout defaults to it."""
    def build() -> redis.Redis:
        return redis.Redis.from_url(
            url() if callable(url) else url, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s if connect_timeout_s is None else connect_timeout_s)

    return PerProcess(build)


class RedisRecorder:
    """Base of the adapters that count figures in Redis for the metrics exporter: a short
    timeout, and the client built on first use and again in a forked child."""

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self._client = per_process_redis(url, timeout_s=timeout_s)

    def _redis(self) -> redis.Redis:
        return self._client.get()
