"""The worker process's services: built once per process, never at import, never shared
across a fork (pymongo clients must not cross one)."""

import os

from pipeline.bootstrap import Services, bootstrap
from workers.app import app
from workers.dispatch import CeleryDispatcher

_services: Services | None = None
_pid: int | None = None


def services() -> Services:
    global _services, _pid
    if _services is None or _pid != os.getpid():
        _services = bootstrap(dispatcher=CeleryDispatcher(app))
        _pid = os.getpid()
    return _services


def reset() -> None:
    global _services, _pid
    _services, _pid = None, None
