"""Per-tenant usage counters in Redis, beside the workers' other figures (workers/telemetry.py),
so the one metrics exporter (`conversa metrics`) serves what every worker counted.

One hash, ``conversa:metrics:tenant_usage``, field ``<tenant>|<count>`` (a ``domain.usage``
count name), one pipelined ``HINCRBY`` per count a stage added. The client is built on first
use and rebuilt in a forked child. Recording never fails a stage: a Redis error is logged and
the figure is lost (the job record keeps it: ``conversa usage`` reads those).
"""

import logging

import redis

from adapters.redis.client import RedisRecorder
from domain.usage import Usage

log = logging.getLogger(__name__)

TENANT_USAGE_KEY = "conversa:metrics:tenant_usage"
SEPARATOR = "|"


class RedisUsageMetrics(RedisRecorder):
    """The UsageMetrics port on Redis."""

    def add(self, tenant: str, usage: Usage) -> None:
        counts = {name: value for name, value in usage.counts().items() if value}
        if not counts:
            return
        try:
            with self._redis().pipeline(transaction=False) as pipe:
                for name, value in counts.items():
                    pipe.hincrby(TENANT_USAGE_KEY, f"{tenant}{SEPARATOR}{name}", value)
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("metrics: could not count tenant %s's usage: %s", tenant, exc)
