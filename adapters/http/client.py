"""An httpx client whose every connection goes through the address guard."""

import httpcore
import httpx

from adapters.http.guard import AddressGuard, GuardedBackend

USER_AGENT = "ConverSA-Ingest/1"


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport on a connection pool that connects through ``GuardedBackend``.

    httpx has no parameter for httpcore's network backend, so the pool it built is replaced
    by one that is the same but for the backend. No proxy is used (``trust_env`` off): a
    proxy would make the connection, and the guard would only ever see the proxy."""

    def __init__(self, guard: AddressGuard) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=GuardedBackend(guard), max_connections=10,
            max_keepalive_connections=5, keepalive_expiry=5.0)


def guarded_client(guard: AddressGuard, *, connect_timeout: float, read_timeout: float,
                   max_redirects: int) -> httpx.Client:
    """A client for user-given URLs: the guard on every hop, at most ``max_redirects``
    redirects, and a connect and a read timeout (the read timeout bounds each wait for
    bytes, not the whole transfer; the size limit bounds that)."""
    return httpx.Client(
        transport=GuardedTransport(guard), trust_env=False,
        follow_redirects=max_redirects > 0, max_redirects=max_redirects,
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        headers={"User-Agent": USER_AGENT})
