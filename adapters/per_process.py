"""A value built on first use in each process, and built again in a forked child.

pymongo, redis-py and boto3 clients must not cross a fork (a pool process would share the
parent's sockets), and no client may be built at import time: every adapter keeps its
client in one of these.
"""

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """``get()`` builds the value with ``build`` the first time it is asked for in a process
    (under a lock, so two threads build it once) and returns the same value after that."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._lock_pid = os.getpid()

    def get(self) -> T:
        value, pid = self._value, self._pid
        if value is not None and pid == os.getpid():
            return value
        with self._own_lock():
            if self._value is None or self._pid != os.getpid():
                self._value = self._build()
                self._pid = os.getpid()
            return self._value

    def _own_lock(self) -> threading.Lock:
        if self._lock_pid != os.getpid():  # a forked child never waits on its parent's lock
            self._lock, self._lock_pid = threading.Lock(), os.getpid()
        return self._lock

    def built(self) -> T | None:
        """The value if this process built one, else None (for closing it)."""
        return self._value if self._pid == os.getpid() else None

    def discard(self) -> T | None:
        """Forget the value and return it if this process built it (for closing it), else
        None: the next ``get()`` builds a new one."""
        with self._own_lock():
            value = self._value if self._pid == os.getpid() else None
            self._value, self._pid = None, None
            return value

    def reset(self) -> None:
        """Forget the value: the next ``get()`` builds a new one."""
        with self._own_lock():
            self._value, self._pid = None, None

    def set(self, value: T) -> None:
        """Use ``value`` in this process from now on (until a ``reset``)."""
        with self._own_lock():
            self._value, self._pid = value, os.getpid()
