"""The CallbackSender port on httpx, through the same address guard as the URL fetcher: a
callback is a request our workers make to a URL a user gave, so it must not reach loopback,
private or link-local addresses either. Redirects are not followed (a receiver answers
where it was registered)."""

from collections.abc import Mapping
from typing import Any

from adapters.http.client import guarded_client
from adapters.http.fetcher import HttpFetcher, http_error
from adapters.http.guard import AddressGuard
from adapters.per_process import PerProcess
from domain.errors import PermanentError, TransientError


class HttpCallbackSender:
    def __init__(self, guard: AddressGuard, *, connect_timeout: float = 5.0,
                 read_timeout: float = 10.0) -> None:
        self._guard = guard
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self._client_obj: PerProcess[Any] = PerProcess(lambda: guarded_client(
            guard, connect_timeout=connect_timeout, read_timeout=read_timeout, max_redirects=0))

    def _client(self) -> Any:
        return self._client_obj.get()

    def check(self, url: str) -> None:
        HttpFetcher(self._guard, max_bytes=0).check(url)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        self.check(url)
        try:
            response = self._client().post(url, content=body, headers=dict(headers))
        except Exception as exc:
            raise http_error(exc, url) from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in (408, 429) or status >= 500:
            after = response.headers.get("retry-after", "")
            raise TransientError(f"callback to {url}: HTTP {status}",
                                 retry_after=float(after) if after.isdigit() else None)
        raise PermanentError(f"callback to {url}: HTTP {status}")
