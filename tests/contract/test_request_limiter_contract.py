"""The RequestLimiter contract (adapters/ports.py) on the memory adapter and on Redis (a real
Valkey server), where the count is also shared by separate clients and a forked process."""

import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from adapters.memory.users import MemoryRequestLimiter
from adapters.ports import RequestLimiter
from adapters.redis.request_limiter import RedisRequestLimiter


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest) -> Iterator[RequestLimiter]:
    if request.param == "memory":
        yield MemoryRequestLimiter()
        return
    yield RedisRequestLimiter(request.getfixturevalue("redis_url"),
                              key_prefix=f"test:{uuid.uuid4().hex}")


def test_hits_pass_up_to_the_limit_then_say_how_long_to_wait(limiter: RequestLimiter) -> None:
    assert [limiter.hit("a", 3, 60) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.hit("a", 3, 60)
    assert 59 < wait <= 60
    assert limiter.hit("b", 3, 60) == 0.0  # keys are independent
    assert limiter.hit("a", 4, 60) == 0.0  # a larger limit has room for one more


def test_a_hit_is_forgotten_one_window_later_and_refusals_are_not_counted(
        limiter: RequestLimiter) -> None:
    assert limiter.hit("k", 2, 0.6) == 0.0
    time.sleep(0.3)
    assert limiter.hit("k", 2, 0.6) == 0.0
    wait = limiter.hit("k", 2, 0.6)
    assert 0 < wait <= 0.3 + 0.05
    assert limiter.hit("k", 2, 0.6) > 0  # refused again: nothing counted
    time.sleep(wait + 0.02)
    assert limiter.hit("k", 2, 0.6) == 0.0  # the first hit left the window
    assert limiter.hit("k", 2, 0.6) > 0  # the second is still in it


def test_concurrent_hits_pass_exactly_the_limit(limiter: RequestLimiter) -> None:
    answers: list[float] = []
    threads = [threading.Thread(target=lambda: answers.append(limiter.hit("c", 7, 60)))
               for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count(0.0) == 7
    assert all(wait > 0 for wait in answers if wait != 0.0)


def _hit_twice(limiter: RedisRequestLimiter) -> None:
    """In a forked child, on the parent's limiter object (its client must not be reused)."""
    assert limiter.hit("shared", 3, 60) == 0.0
    assert limiter.hit("shared", 3, 60) == 0.0


def test_redis_counts_are_shared_by_clients_and_processes(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    parent = RedisRequestLimiter(redis_url, key_prefix=prefix)
    assert parent.hit("warm", 1, 60) == 0.0  # the parent's client exists before the fork
    child = multiprocessing.get_context("fork").Process(target=_hit_twice, args=(parent,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    other = RedisRequestLimiter(redis_url, key_prefix=prefix)
    assert other.hit("shared", 3, 60) == 0.0
    assert parent.hit("shared", 3, 60) > 0
    other.reset("shared")
    assert parent.hit("shared", 3, 60) == 0.0
