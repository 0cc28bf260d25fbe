"""The UrlFetcher port on httpx: a document's bytes streamed from an ``http(s)://`` URL.

- Every connection goes through the address guard (``adapters.http.guard``): loopback,
  private and link-local addresses are refused, on every redirect hop, unless allowed.
- At most ``max_redirects`` redirects; connect and read timeouts; a response longer than
  ``max_bytes`` is refused from its Content-Length and, when that is absent or lies, while
  it streams, so no more than ``max_bytes`` (plus one read) is ever taken in.
- Errors are ours: 429, 5xx, timeouts and lost connections are TransientError (Retry-After
  honoured); other 4xx, too many redirects, a refused address or a size over the limit are
  PermanentError.
- The client is built on first use in each process, never at import or construction.
"""

import io
from collections.abc import Iterator
from typing import Any, BinaryIO

from adapters.http.client import guarded_client
from adapters.http.guard import AddressGuard
from adapters.per_process import PerProcess
from adapters.streams import BodyStream
from domain.errors import ConversaError, PermanentError, TransientError
from domain.uploads import check_size

READ_BLOCK = 64 * 1024


def http_error(exc: BaseException, url: str) -> ConversaError:
    """Our error for an httpx exception met while fetching ``url``."""
    import httpx

    if isinstance(exc, ConversaError):
        return exc
    if isinstance(exc, httpx.TooManyRedirects):
        return PermanentError(f"fetching {url}: too many redirects")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return PermanentError(f"fetching {url}: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"fetching {url}: timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):
        return TransientError(f"fetching {url}: {type(exc).__name__}: {exc}")
    return PermanentError(f"fetching {url}: unexpected {type(exc).__name__}: {exc}")


def status_error(status: int, headers: Any, url: str) -> ConversaError:
    """Our error for a response status that is not a success."""
    if status == 429 or status >= 500:
        after = headers.get("retry-after", "")
        return TransientError(f"fetching {url}: HTTP {status}",
                              retry_after=float(after) if after.isdigit() else None)
    return PermanentError(f"fetching {url}: HTTP {status}")


class _ResponseReader(BodyStream):
    """A streaming httpx response as a raw binary stream, counting against the limit."""

    def __init__(self, response: Any, blocks: Iterator[bytes], url: str, limit: int) -> None:
        super().__init__(response)
        self._blocks, self._url, self._limit = blocks, url, limit
        self._pending = b""
        self._taken = 0

    def readinto(self, buffer: Any) -> int:
        if not self._pending:
            try:
                self._pending = next(self._blocks, b"")
            except Exception as exc:
                raise http_error(exc, self._url) from exc
            self._taken += len(self._pending)
            check_size(self._taken, self._limit, name=self._url)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class HttpFetcher:
    """Fetches user-given URLs; see the module docstring."""

    def __init__(self, guard: AddressGuard, *, max_bytes: int, connect_timeout: float = 5.0,
                 read_timeout: float = 30.0, max_redirects: int = 5) -> None:
        self._guard = guard
        self._max_bytes = max_bytes
        self._options: dict[str, Any] = {"connect_timeout": connect_timeout,
                                         "read_timeout": read_timeout,
                                         "max_redirects": max_redirects}
        self._client_obj: PerProcess[Any] = PerProcess(
            lambda: guarded_client(self._guard, **self._options))

    def _client(self) -> Any:
        return self._client_obj.get()

    def check(self, url: str) -> None:
        """Refuse at once what ``open`` would refuse before any request: a scheme other than
        http(s), or a host that resolves to an address the guard refuses."""
        import httpx

        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise PermanentError(f"not a valid URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise PermanentError(f"not an http(s) URL: {url}")
        self._guard.resolve(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))

    def open(self, url: str) -> BinaryIO:
        self.check(url)
        client = self._client()
        try:
            # identity: the size limit counts the bytes as they arrive, never a decompression
            request = client.build_request("GET", url, headers={"Accept-Encoding": "identity"})
            response = client.send(request, stream=True)
        except Exception as exc:
            raise http_error(exc, url) from exc
        try:
            if response.status_code >= 300:
                raise status_error(response.status_code, response.headers, url)
            declared = response.headers.get("content-length", "")
            if declared.isdigit():
                check_size(int(declared), self._max_bytes, name=url)
        except BaseException:
            response.close()
            raise
        reader = _ResponseReader(response, response.iter_bytes(READ_BLOCK), url, self._max_bytes)
        return io.BufferedReader(reader, READ_BLOCK)
