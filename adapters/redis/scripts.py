"""A Lua script run on a per-process Redis client: the mechanism of every Redis adapter that
counts something atomically for all processes (the OpenAI rate limiter, the API's limits).

The client is made on first use and again in a forked child (a socket must not cross a fork);
Redis errors become :class:`TransientError` here, once.
"""

from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script

from adapters.per_process import PerProcess
from adapters.redis.client import per_process_redis
from domain.errors import TransientError


class RedisScript:
    """``script(keys, args)`` runs ``source`` atomically on the Redis at ``url``."""

    def __init__(self, url: str, source: str, *, what: str,
                 timeout_seconds: float = 5.0) -> None:
        self._source = source
        self._what = what
        self._client = per_process_redis(url, timeout_s=timeout_seconds)
        self._registered: PerProcess[tuple[redis.Redis, Script]] = PerProcess(self._register)

    def _register(self) -> tuple[redis.Redis, Script]:
        client = self._client.get()
        return client, client.register_script(self._source)

    def _for_process(self) -> tuple[redis.Redis, Script]:
        return self._registered.get()

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
