"""The retry rule for transient failures: exponential backoff with equal jitter, capped."""

import random


def retry_delay(
    attempt: int, *, base: float, cap: float, retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 0).

    Equal jitter (a uniform draw between half the exponential bound and the bound) spreads
    retries of many jobs that failed together while keeping at least half of each backoff;
    a server's Retry-After is a floor, but never beyond ``cap``. See "Exponential Backoff
    And Jitter", https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
    """
    if base <= 1:
        raise ValueError("the backoff base must be above 1, or delays would not grow")
    # The exponent is bounded so a huge attempt count caps instead of overflowing.
    bound = min(cap, base ** min(attempt + 1, 64))
    delay = (rng or random).uniform(bound / 2, bound)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, cap)
