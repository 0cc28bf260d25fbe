"""The OpenAI SDK plumbing both OpenAI adapters share: the client, the one retry policy, the errors.

- The client is made lazily, once per process (again in a forked child), with the SDK's own
  retries off (``max_retries=0``) so tenacity's policy here is the only one.
- Each attempt first takes its requests and tokens from the rate limiter, when there is one.
- 429, 408, 409, 5xx, timeouts and connection errors are retried with exponential backoff and
  jitter; a ``Retry-After`` (``retry-after-ms``, ``retry-after`` in seconds or as a date, or
  OpenAI's ``x-ratelimit-reset-*``) is honoured: the wait is never shorter than asked. Attempts
  and total time are bounded; past the budget, or when the server asks to wait longer than the
  longest backoff or the budget allows, the call raises :class:`TransientError` with
  ``retry_after``, so the task is rescheduled instead of holding a worker.
- 400, 401, 403, 404, 422 and a 429 for an exhausted quota are :class:`PermanentError`.
- Messages name the status, OpenAI's error type and code and the request id; the API key is
  never in them (it is redacted, and the SDK's exception is not chained).
"""

import email.utils
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypedDict, TypeVar

import openai
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from adapters.per_process import PerProcess
from domain.errors import ConfigurationError, PermanentError, TransientError

T = TypeVar("T")

#: Statuses worth another try besides 5xx.
RETRIED_STATUSES = frozenset({408, 409, 429})
#: The longest error detail kept from a server's answer.
MAX_DETAIL_CHARS = 300

_SECRET_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-*]{6,}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


class RateLimiter(Protocol):
    """What the adapters need of a rate limiter (see ``adapters.redis.rate_limit``)."""

    @property
    def max_tokens_per_request(self) -> int: ...

    def acquire(self, tokens: int, *, max_wait: float | None = None) -> float: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retries of one call: attempts, backoff and total seconds."""

    max_retries: int = 5
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 20.0
    budget_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigurationError("OpenAI max_retries cannot be negative")
        if self.backoff_seconds <= 0 or self.max_backoff_seconds < self.backoff_seconds:
            raise ConfigurationError(
                "OpenAI backoff must be positive and not above the maximum backoff")
        if self.budget_seconds <= 0:
            raise ConfigurationError("OpenAI retry budget must be positive")


class stop_when(stop_base):  # noqa: N801 (tenacity's naming)
    """A tenacity stop condition from a predicate, so it combines with ``|``."""

    def __init__(self, predicate: Callable[[RetryCallState], bool]) -> None:
        self._predicate = predicate

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._predicate(retry_state)


class _RetryableCallError(Exception):
    """One failed attempt worth another (internal to this module)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from its headers, or None when it did not say."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            if name == "retry-after":
                try:
                    date = email.utils.parsedate_to_datetime(value)
                except (TypeError, ValueError, IndexError):
                    continue
                seconds = date.timestamp() - (time.time() if now is None else now)
                return max(0.0, seconds)
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    resets = [_duration(headers.get(name)) for name in
              ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")]
    known = [r for r in resets if r is not None]
    return max(known) if known else None


def _duration(value: str | None) -> float | None:
    """OpenAI's reset durations: ``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``."""
    if not value:
        return None
    parts = _DURATION_PART.findall(value.strip())
    if not parts or "".join(number + unit for number, unit in parts) != value.strip():
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(number) * scale[unit] for number, unit in parts)


class CallerOptions(TypedDict, total=False):
    """The connection and retry options every OpenAI adapter takes as keyword arguments
    (``caller`` gives their defaults)."""

    base_url: str | None
    timeout: float
    max_retries: int
    backoff_seconds: float
    max_backoff_seconds: float
    retry_budget_seconds: float
    limiter: RateLimiter | None


def caller(api_key: str, options: CallerOptions) -> "OpenAICaller":
    """The OpenAICaller of an adapter given ``options``: no base URL (OpenAI's own), a 30 s
    timeout, no limiter, and RetryPolicy's defaults for what is not given."""
    unknown = sorted(set(options) - set(CallerOptions.__annotations__))
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {', '.join(unknown)}")
    return OpenAICaller(
        api_key=api_key, base_url=options.get("base_url"),
        timeout=options.get("timeout", 30.0), limiter=options.get("limiter"),
        policy=RetryPolicy(
            max_retries=options.get("max_retries", RetryPolicy.max_retries),
            backoff_seconds=options.get("backoff_seconds", RetryPolicy.backoff_seconds),
            max_backoff_seconds=options.get("max_backoff_seconds",
                                            RetryPolicy.max_backoff_seconds),
            budget_seconds=options.get("retry_budget_seconds", RetryPolicy.budget_seconds)))


class OpenAICaller:
    """Runs SDK calls for one adapter: per-process client, limiter, retries, errors."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        timeout: float,
        policy: RetryPolicy,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key or not isinstance(api_key, str):
            raise ConfigurationError("CONVERSA_OPENAI_API_KEY is not set")
        if timeout <= 0:
            raise ConfigurationError("the OpenAI timeout must be positive")
        self._api_key = api_key
        self._base_url = base_url
        self._timeout = timeout
        self._policy = policy
        self._limiter = limiter
        self._sleep = sleep
        self._client: PerProcess[openai.OpenAI] = PerProcess(lambda: openai.OpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0))

    @property
    def limiter(self) -> RateLimiter | None:
        return self._limiter

    def client(self) -> openai.OpenAI:
        """The SDK client of this process (made on first use, again after a fork)."""
        return self._client.get()

    def redact(self, text: str) -> str:
        """``text`` without the API key (nor anything that looks like one), shortened."""
        if len(self._api_key) >= 4:
            text = text.replace(self._api_key, "[redacted]")
        text = _SECRET_PATTERN.sub("sk-[redacted]", text)
        return text if len(text) <= MAX_DETAIL_CHARS else text[:MAX_DETAIL_CHARS] + "..."

    def call(self, what: str, tokens: int, request: Callable[[openai.OpenAI], T]) -> T:
        """``request(client)`` under the limiter and the retry policy.

        Raises TransientError once the policy gives up on retryable failures, PermanentError on
        the others; nothing from the SDK escapes.
        """
        policy = self._policy
        retrying = Retrying(
            retry=retry_if_exception_type(_RetryableCallError),
            wait=self._wait,
            stop=stop_after_attempt(policy.max_retries + 1)
            | stop_before_delay(policy.budget_seconds)
            | stop_when(self._asked_to_wait_too_long),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(what, tokens, request)
        except _RetryableCallError as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            retry_after = exc.retry_after if exc.retry_after is not None else policy.backoff_seconds
            raise TransientError(
                f"{what}: {exc.reason}; gave up after {attempts} attempt(s)",
                retry_after=retry_after) from None
        raise AssertionError("unreachable: tenacity either returned or raised")

    def _asked_to_wait_too_long(self, state: RetryCallState) -> bool:
        """A Retry-After above the longest backoff is not slept here: the task is rescheduled."""
        exc = state.outcome.exception() if state.outcome is not None else None
        return (isinstance(exc, _RetryableCallError) and exc.retry_after is not None
                and exc.retry_after > self._policy.max_backoff_seconds)

    def _wait(self, state: RetryCallState) -> float:
        policy = self._policy
        backoff = wait_exponential_jitter(
            initial=policy.backoff_seconds, max=policy.max_backoff_seconds,
            jitter=policy.backoff_seconds)(state)
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _RetryableCallError) and exc.retry_after is not None:
            # Honour the server: never sooner than it asked, a little jitter on top.
            return exc.retry_after + min(backoff, exc.retry_after * 0.1, 1.0)
        return backoff

    def _attempt(self, what: str, tokens: int, request: Callable[[openai.OpenAI], T]) -> T:
        if self._limiter is not None:
            self._limiter.acquire(tokens)
        try:
            return request(self.client())
        except openai.APITimeoutError:
            raise _RetryableCallError(f"timed out after {self._timeout:g}s") from None
        except openai.APIConnectionError as exc:
            raise _RetryableCallError(f"connection failed: {self.redact(str(exc))}") from None
        except openai.APIStatusError as exc:
            self._translate_status(what, exc)
        except openai.OpenAIError as exc:
            raise PermanentError(f"{what}: {type(exc).__name__}: {self.redact(str(exc))}") from None
        raise AssertionError("unreachable: _translate_status always raises")

    def _translate_status(self, what: str, exc: openai.APIStatusError) -> None:
        status = exc.status_code
        body = exc.body if isinstance(exc.body, Mapping) else {}
        code = body.get("code") if isinstance(body.get("code"), str) else None
        kind = body.get("type") if isinstance(body.get("type"), str) else None
        message = body.get("message") if isinstance(body.get("message"), str) else None
        detail = f"HTTP {status}"
        if kind or code:
            detail += f" {kind or '-'}/{code or '-'}"
        if message:
            detail += f": {self.redact(str(message))}"
        if exc.request_id:
            detail += f" (request {self.redact(exc.request_id)})"
        if status == 429 and code == "insufficient_quota":
            raise PermanentError(f"{what}: {detail}") from None
        if status in RETRIED_STATUSES or status >= 500:
            raise _RetryableCallError(detail, parse_retry_after(exc.response.headers)) from None
        raise PermanentError(f"{what}: {detail}") from None
