"""The JobEvents port on a Redis stream per tenant (``XADD`` with an approximate
``MAXLEN``, ``XREAD`` to follow it): ordered, growing ids that a server-sent events client
gives back as ``Last-Event-ID`` to resume where it stopped.

The client is built on first use and rebuilt in a forked child. Publishing never fails a
stage: a Redis error is logged and the event is lost (the job record still tells)."""

import json
import logging
from collections.abc import Mapping
from typing import Any

import redis

from adapters.redis.client import per_process_redis
from domain.errors import TransientError

log = logging.getLogger(__name__)

KEY_PREFIX = "conversa:events:"


class RedisJobEvents:
    def __init__(self, url: str, max_len: int = 1000, timeout_s: float = 2.0) -> None:
        self._url = url
        self._max_len = max_len
        self._timeout_s = timeout_s
        # No command timeout: ``read`` blocks for as long as it asks.
        self._client = per_process_redis(url, timeout_s=None, connect_timeout_s=timeout_s)

    def _redis(self) -> redis.Redis:
        return self._client.get()

    def publish(self, tenant: str, event: Mapping[str, object]) -> None:
        try:
            self._redis().xadd(KEY_PREFIX + tenant, {"data": json.dumps(event, default=str)},
                               maxlen=self._max_len, approximate=True)
        except redis.RedisError as exc:
            log.warning("events: could not publish a job event of %s: %s", tenant, exc)

    def latest(self, tenant: str) -> str:
        try:
            newest: Any = self._redis().xrevrange(KEY_PREFIX + tenant, count=1)
        except redis.RedisError as exc:
            raise TransientError(f"reading job events: {exc}") from exc
        return str(newest[0][0].decode()) if newest else "0"

    def read(self, tenant: str, after: str, wait_seconds: float
             ) -> list[tuple[str, dict[str, object]]]:
        key = KEY_PREFIX + tenant
        try:
            answer: Any = self._redis().xread({key: after or "0"},
                                              block=max(1, int(wait_seconds * 1000)), count=100)
        except redis.RedisError as exc:
            raise TransientError(f"reading job events: {exc}") from exc
        events = []
        for _, entries in answer or []:
            for entry_id, fields in entries:
                events.append((entry_id.decode(), json.loads(fields[b"data"])))
        return events
