"""The URL fetcher and its address guard against real HTTP servers on loopback: loopback and
private addresses refused (on every redirect hop), redirects bounded, the size limit while
streaming, timeouts, and statuses as our error kinds."""

import pytest

from adapters.http.fetcher import HttpFetcher
from adapters.http.guard import AddressGuard, BlockedAddressError
from domain.errors import PermanentError, TransientError
from tests.support.http_servers import http_server

pytestmark = pytest.mark.integration

DOC = b"# Tide tables\n\nSpring tides follow the new and the full moon.\n"
ALLOW = AddressGuard.of(True, [])


def fetch(fetcher: HttpFetcher, url: str) -> bytes:
    with fetcher.open(url) as stream:
        return stream.read()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_url_resolving_to_loopback_is_refused_with_the_setting_named(host: str) -> None:
    with http_server(files={"tides.md": DOC}) as server:
        port = server.url.rsplit(":", 1)[1]
        fetcher = HttpFetcher(AddressGuard(), max_bytes=10_000)
        with pytest.raises(BlockedAddressError) as refused:
            fetch(fetcher, f"http://{host}:{port}/files/tides.md")
        assert server.requests == []  # refused before connecting
    message = str(refused.value)
    # localhost may resolve to ::1 first; either way the address and its kind are named
    assert "127.0.0.1, a loopback address" in message or "::1, a loopback address" in message
    assert "CONVERSA_FETCH__ALLOW_PRIVATE_ADDRESSES" in message


@pytest.mark.parametrize(("address", "kind"), [
    ("169.254.169.254", "link-local"), ("10.1.2.3", "private"), ("192.168.0.10", "private"),
    ("[::1]", "loopback"), ("[fe80::1]", "link-local"), ("0.0.0.0", "unspecified"),
    ("[::ffff:127.0.0.1]", "loopback")])
def test_private_and_link_local_addresses_are_refused(address: str, kind: str) -> None:
    fetcher = HttpFetcher(AddressGuard(), max_bytes=10_000)
    with pytest.raises(BlockedAddressError, match=kind):
        fetcher.check(f"http://{address}/latest/meta-data/")


def test_with_the_setting_on_a_local_document_is_fetched() -> None:
    with http_server(files={"tides.md": DOC}) as server:
        assert fetch(HttpFetcher(ALLOW, max_bytes=10_000), f"{server.url}/files/tides.md") == DOC


def test_every_redirect_hop_is_checked() -> None:
    """127.0.0.1 is allowed, 127.0.0.2 (loopback too) is not: a redirect there is refused
    and the second server never hears a request."""
    guard = AddressGuard.of(False, ["127.0.0.1/32"])
    with http_server("127.0.0.2", files={"tides.md": DOC}) as hidden, http_server() as front:
        fetcher = HttpFetcher(guard, max_bytes=10_000)
        target = f"{hidden.url}/files/tides.md"
        with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.2"):
            fetch(fetcher, f"{front.url}/redirect?to={target}")
        assert [r.path for r in front.requests] == [f"/redirect?to={target}"]
        assert hidden.requests == []
        # the same redirect to an allowed address is followed
        same = f"{front.url}/redirect?to={front.url}/files/other.md"
        front.state.files["other.md"] = DOC
        assert fetch(fetcher, same) == DOC


def test_redirects_are_bounded() -> None:
    with http_server() as server:
        fetcher = HttpFetcher(ALLOW, max_bytes=10_000, max_redirects=3)
        with pytest.raises(PermanentError, match="too many redirects"):
            fetch(fetcher, f"{server.url}/loop")
        assert len(server.requests) == 4  # the first request and three redirects


def test_the_size_limit_holds_while_streaming_without_a_length() -> None:
    with http_server() as server:
        fetcher = HttpFetcher(ALLOW, max_bytes=200_000)
        with pytest.raises(PermanentError, match="over the limit of 200000 bytes"):
            fetch(fetcher, f"{server.url}/endless?blocks=1000")  # 65 MB offered
        # within the limit, the same kind of answer is read whole
        assert len(fetch(fetcher, f"{server.url}/endless?blocks=2")) == 2 * 65536


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    with http_server() as server:
        fetcher = HttpFetcher(ALLOW, max_bytes=1000)
        url = f"{server.url}/declared-large?size=5000000"
        with pytest.raises(PermanentError) as refused:
            fetcher.open(url)
        assert str(refused.value) == f"file too large: {url} is over the limit of 1000 bytes"


def test_a_read_timeout_is_transient() -> None:
    with http_server() as server:
        fetcher = HttpFetcher(ALLOW, max_bytes=1000, read_timeout=0.2)
        with pytest.raises(TransientError, match="timed out"):
            fetch(fetcher, f"{server.url}/slow?seconds=2")


@pytest.mark.parametrize(("status", "kind"), [(404, PermanentError), (403, PermanentError),
                                               (503, TransientError), (429, TransientError)])
def test_statuses_become_our_error_kinds(status: int, kind: type[Exception]) -> None:
    with http_server() as server:
        fetcher = HttpFetcher(ALLOW, max_bytes=1000)
        with pytest.raises(kind, match=f"HTTP {status}"):
            fetcher.open(f"{server.url}/status/{status}")


def test_other_schemes_are_refused() -> None:
    fetcher = HttpFetcher(ALLOW, max_bytes=1000)
    for url in ("file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1/"):
        with pytest.raises(PermanentError, match="not an http"):
            fetcher.check(url)


def test_a_name_that_does_not_resolve_is_the_urls_fault() -> None:
    fetcher = HttpFetcher(AddressGuard(), max_bytes=1000)
    with pytest.raises(PermanentError, match=r"cannot resolve no-such-host\.invalid"):
        fetcher.check("http://no-such-host.invalid/report.pdf")
