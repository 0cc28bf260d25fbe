"""A Lua script run on a per-process Redis client: the mechanism of every Redis adapter that
counts something atomically for all processes (the OpenAI rate limiter, the API's limits).

The client is made on first use and again in a forked child (a socket must not cross a fork);
Redis errors become :class:`TransientError` here, once.
"""

import os
import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script

from domain.errors import TransientError


class RedisScript:
    """``script(keys, args)`` runs ``source`` atomically on the Redis at ``url``."""

    def __init__(self, url: str, source: str, *, what: str,
                 timeout_seconds: float = 5.0) -> None:
        self._url = url
        self._source = source
        self._what = what
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._client: redis.Redis | None = None
        self._script: Script | None = None

    def _for_process(self) -> tuple[redis.Redis, Script]:
        with self._lock:
            if self._client is None or self._script is None or self._pid != os.getpid():
                self._client = redis.Redis.from_url(
                    self._url, socket_timeout=self._timeout,
                    socket_connect_timeout=self._timeout)
                self._script = self._client.register_script(self._source)
                self._pid = os.getpid()
            return self._client, self._script

    def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        _, script = self._for_process()
        try:
            return script(keys=list(keys), args=list(args))
        except redis.RedisError as exc:
            raise TransientError(f"{self._what}: Redis failed: {exc}") from exc

    def delete(self, *keys: str) -> None:
        """Remove ``keys`` (for tests and operators)."""
        client, _ = self._for_process()
        try:
            client.delete(*keys)
        except redis.RedisError as exc:
            raise TransientError(f"{self._what}: Redis failed: {exc}") from exc
