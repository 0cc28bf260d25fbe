"""PerProcess, the adapters' one lazy per-process value: built on first use, once per process."""

import os
import threading

from adapters.per_process import PerProcess


class Counter:
    def __init__(self) -> None:
        self.built: list[int] = []

    def __call__(self) -> object:
        self.built.append(os.getpid())
        return object()


def test_nothing_is_built_before_the_first_get_and_the_value_is_reused() -> None:
    build = Counter()
    value = PerProcess(build)
    assert build.built == []
    assert value.built() is None
    first = value.get()
    assert value.get() is first
    assert value.built() is first
    assert build.built == [os.getpid()]


def test_two_threads_asking_at_once_build_one_value() -> None:
    gate = threading.Barrier(8)
    build = Counter()
    value = PerProcess(build)
    seen: list[object] = []

    def ask() -> None:
        gate.wait()
        seen.append(value.get())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(build.built) == 1
    assert len({id(v) for v in seen}) == 1


def test_a_forked_child_builds_its_own_and_the_parent_keeps_its() -> None:
    value = PerProcess(Counter())
    parent = value.get()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        ok = value.built() is None and value.get() is not parent and value.get() is value.get()
        os.write(write_end, b"1" if ok else b"0")
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        assert answer.read() == b"1"
    os.waitpid(pid, 0)
    assert value.get() is parent


def test_discard_hands_back_this_process_value_once() -> None:
    value = PerProcess(Counter())
    assert value.discard() is None
    first = value.get()
    assert value.discard() is first
    assert value.discard() is None
    assert value.get() is not first  # built again after a discard
