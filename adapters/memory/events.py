"""JobEvents in this process only: for processes without a broker's Redis, and tests."""

import threading
from collections.abc import Mapping


class MemoryJobEvents:
    def __init__(self) -> None:
        self._events: dict[str, list[tuple[str, dict[str, object]]]] = {}
        self._changed = threading.Condition()
        self._counter = 0

    def publish(self, tenant: str, event: Mapping[str, object]) -> None:
        with self._changed:
            self._counter += 1
            self._events.setdefault(tenant, []).append((f"{self._counter}-0", dict(event)))
            self._changed.notify_all()

    def latest(self, tenant: str) -> str:
        with self._changed:
            events = self._events.get(tenant)
            return events[-1][0] if events else "0"

    def read(self, tenant: str, after: str, wait_seconds: float
             ) -> list[tuple[str, dict[str, object]]]:
        with self._changed:
            start = int(after.split("-")[0]) if after else 0

            def newer() -> list[tuple[str, dict[str, object]]]:
                return [(i, e) for i, e in self._events.get(tenant, [])
                        if int(i.split("-")[0]) > start]
            self._changed.wait_for(newer, timeout=wait_seconds)
            return newer()
