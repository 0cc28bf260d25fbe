"""The worker process's services: built once per process, never at import, never shared
across a fork (pymongo clients must not cross one)."""

from adapters.per_process import PerProcess
from pipeline.bootstrap import Services, bootstrap_process

_services: PerProcess[Services] = PerProcess(bootstrap_process)


def services() -> Services:
    return _services.get()


def reset() -> None:
    _services.reset()
