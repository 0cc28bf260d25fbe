"""The RequestLimiter port on Redis: a sliding-window log per key, shared by every process.

Each key is a sorted set of the hits of the last window, scored by Redis's own clock
(``TIME``, in microseconds), so API processes on any number of machines share one count and
no clock skew between them matters. One Lua script drops the hits older than the window,
counts the rest and either adds this hit or answers how long until the oldest one that blocks
it leaves the window; the key expires one window after its last hit.
"""

import uuid

from adapters.redis.scripts import RedisScript

#: KEYS: the key's sorted set. ARGV: the limit, the window in microseconds, a unique member.
#: Returns 0 when the hit was counted, else the microseconds to wait.
_HIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return 0
end
local blocking = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
return math.max(1, tonumber(blocking[2]) + window - now)
"""


class RedisRequestLimiter:
    """At most ``limit`` hits per key in any ``window_seconds``, across every process using
    the same Redis and ``key_prefix``."""

    def __init__(self, redis_url: str, *, key_prefix: str = "conversa:limit") -> None:
        self._script = RedisScript(redis_url, _HIT_LUA, what="request limiter")
        self._prefix = key_prefix

    def hit(self, key: str, limit: int, window_seconds: float) -> float:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("a limit needs at least one hit and a positive window")
        wait = self._script([f"{self._prefix}:{key}"],
                            [limit, int(window_seconds * 1_000_000), uuid.uuid4().hex])
        return int(wait) / 1_000_000

    def reset(self, key: str) -> None:
        """Forget ``key``'s hits (for tests and operators)."""
        self._script.delete(f"{self._prefix}:{key}")
