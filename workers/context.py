"""The worker process's services: built once per process, never at import, never shared
across a fork (pymongo clients must not cross one)."""

import os

from adapters import factory
from adapters.celery.dispatcher import CeleryDispatcher
from pipeline.bootstrap import Services, bootstrap
from pipeline.settings import load_settings
from workers.app import app
from workers.telemetry import MeteredEmbedder

_services: Services | None = None
_pid: int | None = None


def services() -> Services:
    global _services, _pid
    if _services is None or _pid != os.getpid():
        settings = load_settings()
        # Embedder calls and tokens are counted for the metrics endpoint.
        _services = bootstrap(settings, dispatcher=CeleryDispatcher(app),
                              embedder=MeteredEmbedder(factory.embedder(settings)))
        _pid = os.getpid()
    return _services


def reset() -> None:
    global _services, _pid
    _services, _pid = None, None


def install(built: Services) -> None:
    """Use ``built`` in this process from now on (a worker run inside another program, such
    as a benchmark that passes in-memory adapters)."""
    global _services, _pid
    _services, _pid = built, os.getpid()
