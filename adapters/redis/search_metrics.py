"""Search's counters in Redis, beside the workers' figures (workers/telemetry.py), so the one
metrics exporter serves what every API and CLI process counted.

The client is built on first use and rebuilt in a forked child. Recording never fails a
search: a Redis error is logged and the figure is lost.
"""

import logging

import redis

from adapters.redis.client import RedisRecorder

log = logging.getLogger(__name__)

#: Hash of skipped search candidates: field = reason, value = count.
SEARCH_SKIPPED_KEY = "conversa:metrics:search_skipped"


class RedisSearchMetrics(RedisRecorder):
    """The SearchMetrics port on Redis: ``HINCRBY`` of one field per reason."""

    def skipped_candidate(self, reason: str) -> None:
        try:
            self._redis().hincrby(SEARCH_SKIPPED_KEY, reason, 1)
        except redis.RedisError as exc:
            log.warning("metrics: could not count a skipped search candidate: %s", exc)
