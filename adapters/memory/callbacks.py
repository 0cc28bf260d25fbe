"""Callback settings in this process only: for processes without MongoDB, and tests."""

import threading

from domain.callbacks import TenantCallback
from domain.errors import NotFoundError
from domain.job import utcnow


class MemoryCallbackRepository:
    def __init__(self) -> None:
        self._settings: dict[str, TenantCallback] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str) -> TenantCallback | None:
        with self._lock:
            return self._settings.get(tenant)

    def ensure(self, tenant: str, secret: str) -> TenantCallback:
        with self._lock:
            return self._settings.setdefault(tenant, TenantCallback(
                tenant=tenant, url=None, secret=secret, updated_at=utcnow()))

    def set_url(self, tenant: str, url: str | None) -> TenantCallback:
        with self._lock:
            current = self._settings.get(tenant)
            if current is None:
                raise NotFoundError(f"no callback settings for {tenant}")
            updated = current.model_copy(update={"url": url, "updated_at": utcnow()})
            self._settings[tenant] = updated
            return updated
