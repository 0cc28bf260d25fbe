"""A requests-and-tokens rate limiter in Redis, shared by every worker process that calls one API.

Two token buckets (requests and tokens) live in one Redis hash each and are checked and taken
together by one Lua script, atomically, on Redis's own clock (``TIME``), so any number of
processes on any number of machines share one budget. ``acquire(tokens)`` takes one request and
``tokens`` tokens, sleeping the wait the script computes until both buckets allow, or raises
:class:`TransientError` (with ``retry_after``) once the wait would pass ``max_wait_seconds``.

Sizing: a bucket of capacity B refilled at r per second lets at most B + r*T through in any
T seconds. To keep every sliding window of ``window_seconds`` at or under the cap C (which is
how a server counts "per minute"), the burst B is a fraction of C and the refill is
(C - B) / (window + latency allowance); the allowance covers the time from acquiring to the
request reaching the server. The sustained rate is therefore a little under C per window.
"""

import random
import time
from collections.abc import Callable

from adapters.redis.scripts import RedisScript
from domain.errors import ConfigurationError, PermanentError, TransientError

#: KEYS: the requests bucket, the tokens bucket. ARGV: request capacity, request refill per
#: second, token capacity, token refill per second, tokens wanted, key time-to-live in ms.
#: Returns {1, "0"} when both were taken, else {0, seconds to wait} (a string: Lua numbers
#: going back to Redis lose their fraction).
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local request_capacity = tonumber(ARGV[1])
local request_rate = tonumber(ARGV[2])
local token_capacity = tonumber(ARGV[3])
local token_rate = tonumber(ARGV[4])
local wanted = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])

local function level(key, capacity, rate)
  local stored = redis.call('HMGET', key, 'level', 'ts')
  local value = tonumber(stored[1])
  local since = tonumber(stored[2])
  if value == nil or since == nil then
    return capacity
  end
  local elapsed = now - since
  if elapsed < 0 then elapsed = 0 end
  return math.min(capacity, value + elapsed * rate)
end

local requests = level(KEYS[1], request_capacity, request_rate)
local tokens = level(KEYS[2], token_capacity, token_rate)
local wait = 0
if requests < 1 then
  wait = math.max(wait, (1 - requests) / request_rate)
end
if tokens < wanted then
  wait = math.max(wait, (wanted - tokens) / token_rate)
end
if wait > 0 then
  return {0, string.format('%.6f', wait)}
end
redis.call('HSET', KEYS[1], 'level', string.format('%.17g', requests - 1),
           'ts', string.format('%.6f', now))
redis.call('HSET', KEYS[2], 'level', string.format('%.17g', tokens - wanted),
           'ts', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return {1, '0'}
"""

#: Default share of the per-window cap that may go out at once.
DEFAULT_BURST_FRACTION = 0.1


class RedisRateLimiter:
    """At most ``requests_per_window`` requests and ``tokens_per_window`` tokens in any
    ``window_seconds`` (60: per minute), across every process using the same Redis and ``name``.

    The Redis client is made on first use and again in a forked child (one per process;
    ``adapters.redis.scripts``).
    """

    def __init__(
        self,
        redis_url: str,
        *,
        requests_per_window: int,
        tokens_per_window: int,
        window_seconds: float = 60.0,
        name: str = "openai",
        burst_fraction: float = DEFAULT_BURST_FRACTION,
        latency_allowance_seconds: float = 0.5,
        max_wait_seconds: float = 60.0,
        key_prefix: str = "conversa:ratelimit",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if window_seconds <= 0:
            raise ConfigurationError("the rate-limit window must be positive")
        if not 0 < burst_fraction < 1:
            raise ConfigurationError("the rate-limit burst fraction must be between 0 and 1")
        if latency_allowance_seconds < 0 or max_wait_seconds < 0:
            raise ConfigurationError("the rate-limit allowance and max wait cannot be negative")
        self._request_burst = max(1.0, requests_per_window * burst_fraction)
        self._token_burst = float(int(tokens_per_window * burst_fraction))
        if requests_per_window < 2 or requests_per_window <= self._request_burst:
            raise ConfigurationError(
                f"requests per window ({requests_per_window}) must be at least 2 and above "
                "its burst")
        if self._token_burst < 1:
            raise ConfigurationError(
                f"tokens per window ({tokens_per_window}) times the burst fraction "
                f"({burst_fraction}) must be at least one token")
        spread = window_seconds + latency_allowance_seconds
        self._request_rate = (requests_per_window - self._request_burst) / spread
        self._token_rate = (tokens_per_window - self._token_burst) / spread
        self._requests_per_window = requests_per_window
        self._tokens_per_window = tokens_per_window
        self._window = window_seconds
        self._max_wait = max_wait_seconds
        self._script = RedisScript(redis_url, _ACQUIRE_LUA, what="rate limiter")
        self._keys = [f"{key_prefix}:{{{name}}}:requests", f"{key_prefix}:{{{name}}}:tokens"]
        # Idle buckets refill to full within this time; then the keys can go.
        self._ttl_ms = int(max(self._request_burst / self._request_rate,
                               self._token_burst / self._token_rate, window_seconds) * 2000) + 1000
        self._sleep = sleep

    @property
    def max_tokens_per_request(self) -> int:
        """The most tokens one ``acquire`` can take (the token bucket's capacity)."""
        return int(self._token_burst)

    @property
    def requests_per_window(self) -> int:
        return self._requests_per_window

    @property
    def tokens_per_window(self) -> int:
        return self._tokens_per_window

    @property
    def window_seconds(self) -> float:
        return self._window

    def try_acquire(self, tokens: int) -> float:
        """Take one request and ``tokens`` tokens now and return 0, or take nothing and return
        the seconds to wait before both buckets could allow it."""
        if tokens < 0:
            raise PermanentError("cannot acquire a negative number of tokens")
        if tokens > self._token_burst:
            raise PermanentError(
                f"a request of {tokens} tokens can never pass a token bucket of "
                f"{int(self._token_burst)}: raise the tokens-per-minute setting or send less")
        answer = self._script(self._keys, [
            repr(self._request_burst), repr(self._request_rate),
            repr(self._token_burst), repr(self._token_rate), tokens, self._ttl_ms])
        allowed, wait = answer
        return 0.0 if int(allowed) == 1 else float(wait)

    def acquire(self, tokens: int, *, max_wait: float | None = None) -> float:
        """Block until one request and ``tokens`` tokens are taken; returns the seconds waited.

        Raises TransientError (``retry_after`` = the wait still needed) rather than wait more
        than ``max_wait`` (default: the constructor's ``max_wait_seconds``) in all.
        """
        limit = self._max_wait if max_wait is None else max_wait
        started = time.monotonic()
        while True:
            wait = self.try_acquire(tokens)
            waited = time.monotonic() - started
            if wait <= 0:
                return waited
            if waited + wait > limit:
                raise TransientError(
                    f"rate limit: {tokens} tokens would need {wait:.2f}s more after "
                    f"{waited:.2f}s (max wait {limit:g}s)", retry_after=wait)
            # A little jitter so processes woken together do not collide again.
            self._sleep(wait + random.uniform(0, min(0.05, wait * 0.1)))  # noqa: S311

    def reset(self) -> None:
        """Forget both buckets (they start full again). For tests and operators."""
        self._script.delete(*self._keys)
