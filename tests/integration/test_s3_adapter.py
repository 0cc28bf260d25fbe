"""The S3 adapter against moto's S3 server over real HTTP, with boto3 as the client.

Covers round trips, multipart above the threshold, buckets created on demand, metadata with
non-ASCII filenames, server-side encryption, error translation (missing bucket, closed port,
read timeout, a server answering 503 SlowDown) and the memory bound of a 200 MB upload.
"""

import base64
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import exceptions as bce
from botocore.stub import Stubber

from adapters.ports import ObjectStore
from adapters.s3.object_store import (
    MIB,
    S3ObjectStore,
    decode_metadata,
    encode_metadata,
    translate_error,
)
from domain.documents import content_key, sanitize_filename
from domain.errors import NotFoundError, PermanentError, TransientError
from tests.support.fault_proxy import FaultProxy
from tests.support.moto_server import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    unique_bucket,
)
from tests.support.sockets import connections_to, new_connections_in_a_fork, port_of

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def raw(s3_endpoint: str) -> Any:
    """A plain boto3 client of the moto server, to look behind the adapter's back."""
    return boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)


def make_store(endpoint: str, bucket: str | None = None, **kwargs: Any) -> S3ObjectStore:
    options: dict[str, Any] = {"create_bucket": True, "region": REGION, **kwargs}
    return S3ObjectStore(
        bucket or unique_bucket(), endpoint_url=endpoint, access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY, **options)


@pytest.fixture
def store(s3_endpoint: str) -> S3ObjectStore:
    return make_store(s3_endpoint)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- round trips ------------------------------------------------------------------------------

def test_it_is_an_object_store(store: S3ObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_put_get_head_open_delete_round_trip(store: S3ObjectStore) -> None:
    key = content_key("acme", hashlib.sha256(b"hello").hexdigest())
    info = store.put_bytes(key, b"hello world", {"sha256": "abc", "kind": "raw"})
    assert (info.key, info.size, dict(info.metadata)) == (
        key, 11, {"sha256": "abc", "kind": "raw"})

    assert store.get_bytes(key) == b"hello world"
    head = store.head(key)
    assert head is not None
    assert (head.key, head.size, dict(head.metadata)) == (
        key, 11, {"sha256": "abc", "kind": "raw"})
    with store.open(key) as stream:
        assert stream.read(5) == b"hello"
        assert stream.read() == b" world"
        assert stream.read() == b""

    store.delete_file(key)
    assert store.head(key) is None
    store.delete_file(key)  # idempotent
    with pytest.raises(NotFoundError, match=key):
        store.get_bytes(key)
    with pytest.raises(NotFoundError, match=key):
        store.open(key)


def test_writing_a_key_again_replaces_bytes_and_metadata(store: S3ObjectStore) -> None:
    store.put_bytes("acme/k", b"first", {"kind": "a", "old": "x"})
    store.put_bytes("acme/k", b"second!", {"kind": "b"})
    assert store.get_bytes("acme/k") == b"second!"
    head = store.head("acme/k")
    assert head is not None
    assert (head.size, dict(head.metadata)) == (7, {"kind": "b"})


def test_empty_object_round_trips(store: S3ObjectStore) -> None:
    store.put_bytes("acme/empty", b"", {})
    assert store.get_bytes("acme/empty") == b""
    head = store.head("acme/empty")
    assert head is not None
    assert head.size == 0
    assert dict(head.metadata) == {}


def test_missing_keys(store: S3ObjectStore) -> None:
    assert store.head("acme/nothing") is None
    store.delete_file("acme/nothing")
    with pytest.raises(NotFoundError):
        store.get_bytes("acme/nothing")
    with pytest.raises(NotFoundError):
        store.open("acme/nothing")


def test_open_streams_a_large_object_in_pieces(store: S3ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(3 * MIB + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)
    store.upload_file("acme/blob", path, {})
    digest = hashlib.sha256()
    reads = 0
    with store.open("acme/blob") as stream:
        while piece := stream.read(256 * 1024):
            assert len(piece) <= 256 * 1024
            digest.update(piece)
            reads += 1
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert reads == 13


def test_upload_below_the_threshold_is_a_single_put(
    store: S3ObjectStore, raw: Any, tmp_path: Path
) -> None:
    path = tmp_path / "small"
    path.write_bytes(b"s" * MIB)
    info = store.upload_file("acme/small", path, {"kind": "raw"})
    assert info.size == MIB
    etag = raw.head_object(Bucket=store.bucket, Key="acme/small")["ETag"].strip('"')
    assert etag == hashlib.md5(b"s" * MIB).hexdigest()


def test_upload_above_the_threshold_is_multipart(
    s3_endpoint: str, raw: Any, tmp_path: Path
) -> None:
    store = make_store(s3_endpoint, multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    data = os.urandom(20_000_000)
    path = tmp_path / "twenty"
    path.write_bytes(data)
    info = store.upload_file("acme/twenty", path, {"source_name": "twenty.bin"})
    assert info.size == 20_000_000

    head = raw.head_object(Bucket=store.bucket, Key="acme/twenty")
    assert head["ContentLength"] == 20_000_000
    # A multipart ETag is the MD5 of the parts' MD5s, then "-<number of parts>".
    parts = [data[i:i + 5 * MIB] for i in range(0, len(data), 5 * MIB)]
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    assert head["ETag"].strip('"') == f"{hashlib.md5(md5s).hexdigest()}-4"
    assert store.get_bytes("acme/twenty") == data
    head_info = store.head("acme/twenty")
    assert head_info is not None
    assert head_info.metadata == {"source_name": "twenty.bin"}


def test_upload_of_a_missing_source_is_permanent(store: S3ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="does not exist"):
        store.upload_file("acme/x", tmp_path / "nope", {})


# -- buckets ----------------------------------------------------------------------------------

def test_bucket_is_created_on_first_use_in_its_region(s3_endpoint: str, raw: Any) -> None:
    bucket = unique_bucket()
    store = make_store(s3_endpoint, bucket, region="eu-west-1")
    with pytest.raises(bce.ClientError):
        raw.head_bucket(Bucket=bucket)  # construction made no request
    store.put_bytes("acme/a", b"a", {})
    assert raw.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    # A second store (another process, say) finds the bucket there and uses it.
    again = make_store(s3_endpoint, bucket, region="eu-west-1")
    assert again.get_bytes("acme/a") == b"a"


def test_bucket_created_by_someone_else_meanwhile_is_fine() -> None:
    """The race: HEAD says 404, then CreateBucket says BucketAlreadyOwnedByYou."""
    store = S3ObjectStore("raced", region="eu-west-1", create_bucket=True,
                          access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY)
    client = boto3.client("s3", region_name="eu-west-1", aws_access_key_id=ACCESS_KEY_ID,
                          aws_secret_access_key=SECRET_ACCESS_KEY)
    with Stubber(client) as stubber:
        stubber.add_client_error("head_bucket", "404", http_status_code=404)
        stubber.add_client_error("create_bucket", "BucketAlreadyOwnedByYou",
                                 http_status_code=409, expected_params={
                                     "Bucket": "raced", "CreateBucketConfiguration": {
                                         "LocationConstraint": "eu-west-1"}})
        store._ensure_bucket(client)
        stubber.assert_no_pending_responses()


def test_bucket_taken_by_another_account_is_permanent() -> None:
    store = S3ObjectStore("taken", region="us-east-1", create_bucket=True,
                          access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY)
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id=ACCESS_KEY_ID,
                          aws_secret_access_key=SECRET_ACCESS_KEY)
    with Stubber(client) as stubber:
        stubber.add_client_error("head_bucket", "403", http_status_code=403)
        with pytest.raises(PermanentError, match="s3://taken"):
            store._ensure_bucket(client)


def test_missing_bucket_without_create_is_permanent_on_every_call(
    s3_endpoint: str, tmp_path: Path
) -> None:
    store = make_store(s3_endpoint, unique_bucket("absent"), create_bucket=False)
    path = tmp_path / "f"
    path.write_bytes(b"data")
    calls: list[Callable[[], object]] = [
        lambda: store.put_bytes("acme/a", b"x", {}),
        lambda: store.upload_file("acme/a", path, {}),
        lambda: store.get_bytes("acme/a"),
        lambda: store.open("acme/a"),
        lambda: store.head("acme/a"),  # a HEAD's bare 404 must not pass for "no such key"
        lambda: store.delete_file("acme/a"),
    ]
    for call in calls:
        with pytest.raises(PermanentError, match="absent-") as caught:
            call()
        assert not isinstance(caught.value, NotFoundError)


# -- metadata ---------------------------------------------------------------------------------

def test_non_ascii_filename_survives_as_ascii_headers(store: S3ObjectStore, raw: Any) -> None:
    name = "Résumé \u2013 履歴書 ✓.pdf"
    metadata = {"source_name": name, "safe_name": sanitize_filename(name), "sha256": "f" * 64,
                "note": "  padded  ", "tricky": "=?UTF-8?B?aGk=?=", "empty": ""}
    store.put_bytes("acme/cv", b"%PDF", metadata)

    head = store.head("acme/cv")
    assert head is not None
    assert dict(head.metadata) == metadata
    wire = raw.head_object(Bucket=store.bucket, Key="acme/cv")["Metadata"]
    assert all(value.isascii() for value in wire.values())
    assert wire["sha256"] == "f" * 64  # plain ASCII goes as is
    assert wire["safe_name"] == "R_sum_ _ _ _.pdf"
    assert wire["source_name"] == (
        "=?UTF-8?B?" + base64.b64encode(name.encode()).decode() + "?=")


def test_upload_file_encodes_metadata_too(store: S3ObjectStore, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"bytes")
    store.upload_file("acme/f", path, {"source_name": "naïve café.txt"})
    head = store.head("acme/f")
    assert head is not None
    assert head.metadata == {"source_name": "naïve café.txt"}


def test_metadata_round_trip_without_a_server() -> None:
    metadata = {"a": "plain", "b": "ünï", "c": "", "d": "tab\there", "e": "=?x?="}
    assert decode_metadata(encode_metadata(metadata)) == metadata
    assert decode_metadata({"X": "=?utf-8?b?w7w=?="}) == {"x": "ü"}
    assert decode_metadata({"x": "=?UTF-8?B?not base64?="}) == {"x": "=?UTF-8?B?not base64?="}


@pytest.mark.parametrize("metadata", [
    {"Source_Name": "x"},  # S3 would lower-case it: the round trip would differ
    {"bad name": "x"},
    {"naïve": "x"},
    {"big": "x" * 2100},
])
def test_metadata_s3_cannot_keep_is_refused(store: S3ObjectStore,
                                            metadata: dict[str, str]) -> None:
    with pytest.raises(PermanentError):
        store.put_bytes("acme/m", b"x", metadata)
    assert store.head("acme/m") is None


# -- server-side encryption -------------------------------------------------------------------

def test_sse_aes256_on_put_and_multipart(s3_endpoint: str, raw: Any, tmp_path: Path) -> None:
    store = make_store(s3_endpoint, sse="AES256", multipart_threshold=5 * MIB,
                       multipart_chunksize=5 * MIB)
    store.put_bytes("acme/small", b"secret", {})
    path = tmp_path / "big"
    path.write_bytes(os.urandom(11 * MIB))
    store.upload_file("acme/big", path, {})
    for key in ("acme/small", "acme/big"):
        assert raw.head_object(Bucket=store.bucket, Key=key)["ServerSideEncryption"] == "AES256"
    assert raw.head_object(Bucket=store.bucket, Key="acme/big")["ETag"].endswith('-3"')


def test_sse_kms_sends_the_key_id(s3_endpoint: str, raw: Any) -> None:
    store = make_store(s3_endpoint, sse="aws:kms", kms_key_id="alias/conversa")
    store.put_bytes("acme/k", b"secret", {})
    head = raw.head_object(Bucket=store.bucket, Key="acme/k")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("alias/conversa")


def test_without_sse_no_encryption_header_is_sent(store: S3ObjectStore, raw: Any) -> None:
    store.put_bytes("acme/plain", b"x", {})
    assert raw.head_object(Bucket=store.bucket, Key="acme/plain").get(
        "ServerSideEncryption") in (None, "AES256")  # S3 may default-encrypt; we asked nothing


# -- keys and configuration -------------------------------------------------------------------

@pytest.mark.parametrize("key", [
    "", "/acme/a", "acme/../other/a", "../a", "acme/./a", "acme//a", "acme/a/", "acme/\x00a",
    "acme\\a", "acme/.hidden", "acme/" + "k" * 1100,
])
def test_bad_keys_are_refused_before_any_request(key: str) -> None:
    # The endpoint is a closed port: a request would be a TransientError, not a PermanentError.
    store = make_store(f"http://127.0.0.1:{closed_port()}", max_attempts=1)
    for call in (lambda: store.put_bytes(key, b"x", {}), lambda: store.get_bytes(key),
                 lambda: store.head(key), lambda: store.delete_file(key),
                 lambda: store.open(key)):
        with pytest.raises(PermanentError):
            call()


def test_non_ascii_keys_work(store: S3ObjectStore) -> None:
    store.put_bytes("acme/dossier é/文件", b"x", {})
    assert store.get_bytes("acme/dossier é/文件") == b"x"


@pytest.mark.parametrize("kwargs", [
    {"sse": "aes256"},
    {"kms_key_id": "k"},
    {"access_key_id": "only-the-id"},
    {"multipart_chunksize": MIB},
    {"max_concurrency": 0},
    {"read_timeout": 0},
])
def test_bad_configuration_is_refused_at_construction(kwargs: dict[str, Any]) -> None:
    from domain.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        S3ObjectStore("bucket", **kwargs)


def test_client_is_built_on_first_use_and_again_after_fork(s3_endpoint: str) -> None:
    with FaultProxy(s3_endpoint) as proxy:  # moto closes each connection; the proxy keeps it
        client_is_built_on_first_use_and_again_after_fork(proxy.url)


def client_is_built_on_first_use_and_again_after_fork(endpoint: str) -> None:
    port = port_of(endpoint)
    before = connections_to(port)
    store = make_store(endpoint)
    assert connections_to(port) == before  # construction connected to nothing
    store.put_bytes("acme/f", b"before fork", {})
    parent = connections_to(port) - before
    assert parent  # the first use opened the process's connection

    def read_in_child() -> None:
        assert store.get_bytes("acme/f") == b"before fork"

    assert new_connections_in_a_fork(port, read_in_child)  # the child's client is its own
    assert store.get_bytes("acme/f") == b"before fork"
    assert connections_to(port) - before == parent  # the parent's client is reused


# -- error translation ------------------------------------------------------------------------

def client_error(code: str, status: int, message: str = "m",
                 headers: dict[str, str] | None = None) -> bce.ClientError:
    return bce.ClientError(
        {"Error": {"Code": code, "Message": message},
         "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}}},
        "GetObject")


@pytest.mark.parametrize(("code", "status"), [
    ("SlowDown", 503), ("Throttling", 400), ("ThrottlingException", 400),
    ("RequestTimeout", 400), ("InternalError", 500), ("ServiceUnavailable", 503),
    ("502", 502), ("504", 504), ("TooManyRequests", 429),
])
def test_throttling_and_5xx_are_transient(code: str, status: int) -> None:
    error = translate_error(client_error(code, status), bucket="b", key="t/k", action="get")
    assert type(error) is TransientError
    assert "s3://b/t/k" in str(error)
    assert code in str(error)


@pytest.mark.parametrize(("code", "status"), [
    ("AccessDenied", 403), ("NoSuchBucket", 404), ("InvalidAccessKeyId", 403),
    ("SignatureDoesNotMatch", 403), ("InvalidArgument", 400), ("EntityTooLarge", 400),
    ("MethodNotAllowed", 405), ("PreconditionFailed", 412),
])
def test_refusals_are_permanent(code: str, status: int) -> None:
    error = translate_error(client_error(code, status), bucket="b", key="t/k", action="put")
    assert type(error) is PermanentError
    assert "s3://b/t/k" in str(error)


@pytest.mark.parametrize(("code", "status"), [("NoSuchKey", 404), ("404", 404)])
def test_missing_object_is_not_found(code: str, status: int) -> None:
    error = translate_error(client_error(code, status), bucket="b", key="t/k", action="get")
    assert type(error) is NotFoundError


@pytest.mark.parametrize("exc", [
    bce.EndpointConnectionError(endpoint_url="http://x"),
    bce.ConnectTimeoutError(endpoint_url="http://x"),
    bce.ReadTimeoutError(endpoint_url="http://x"),
    bce.ConnectionClosedError(endpoint_url="http://x"),
    bce.ResponseStreamingError(error="reset"),
])
def test_connection_errors_are_transient(exc: Exception) -> None:
    assert type(translate_error(exc, bucket="b", key="k", action="get")) is TransientError


def test_configuration_errors_are_permanent() -> None:
    error = translate_error(bce.NoCredentialsError(), bucket="b", key="k", action="get")
    assert type(error) is PermanentError
    assert "credentials" in str(error)


def test_retry_after_is_kept_and_secrets_are_blanked() -> None:
    exc = client_error("SlowDown", 503, "key AKIDEXAMPLE0000 secret s3cr3t-s3cr3t",
                       headers={"retry-after": "2"})
    error = translate_error(exc, bucket="b", key="k", action="put",
                            secrets=("s3cr3t-s3cr3t", "AKIDEXAMPLE0000"))
    assert isinstance(error, TransientError)
    assert error.retry_after == 2.0
    assert "s3cr3t" not in str(error)
    assert "AKIDEXAMPLE" not in str(error)


def test_unreachable_endpoint_is_transient() -> None:
    store = make_store(f"http://127.0.0.1:{closed_port()}", max_attempts=1, connect_timeout=1)
    with pytest.raises(TransientError, match="Could not connect"):
        store.put_bytes("acme/a", b"x", {})


def test_read_timeout_is_transient() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        store = make_store(f"http://127.0.0.1:{port}", create_bucket=False, max_attempts=1,
                           read_timeout=0.5)
        with pytest.raises(TransientError, match="timeout"):
            store.get_bytes("acme/a")


class SlowDownServer(http.server.ThreadingHTTPServer):
    """Answers every request with 503 SlowDown, as S3 does when throttling, and counts them."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SlowDownHandler)
        self.requests: list[str] = []


class SlowDownHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: SlowDownServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.requests.append(f"{self.command} {self.path}")
        body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                b"<Message>Please reduce your request rate.</Message></Error>")
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Retry-After", "1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def slow_down() -> Iterator[SlowDownServer]:
    server = SlowDownServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("operation", ["get", "put", "head"])
def test_503_slow_down_is_transient_after_boto_retries(
    slow_down: SlowDownServer, operation: str
) -> None:
    store = make_store(f"http://127.0.0.1:{slow_down.server_address[1]}",
                       create_bucket=False, max_attempts=3)
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: store.get_bytes("acme/k"),
        "put": lambda: store.put_bytes("acme/k", b"x", {}),
        "head": lambda: store.head("acme/k"),
    }
    call = calls[operation]
    with pytest.raises(TransientError) as caught:
        call()
    assert "acme/k" in str(caught.value)
    assert SECRET_ACCESS_KEY not in str(caught.value)
    assert len(slow_down.requests) == 3  # boto tried three times before giving up
    if operation != "head":  # a HEAD's answer has no body, so no code and no Retry-After parse
        assert "SlowDown" in str(caught.value)
    assert caught.value.retry_after == 1.0


# -- memory -----------------------------------------------------------------------------------

# Measured in a fresh child process, by /proc/self/status rather than ru_maxrss: Linux carries
# ru_maxrss over fork and exec, so a child of this (large, moto-holding) test process would start
# with our peak and show no growth at all. VmHWM belongs to the child's own address space.
MEMORY_CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from adapters.s3.object_store import S3ObjectStore

    def status_kib(field):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise LookupError(field)

    endpoint, bucket, path = sys.argv[1:4]
    store = S3ObjectStore(bucket, endpoint_url=endpoint, access_key_id="a",
                          secret_access_key="b", region="us-east-1", create_bucket=True)
    warm = Path(path + ".warm")
    warm.write_bytes(b"w" * 1024)
    store.upload_file("warm/up", warm, {})  # imports and the client, before measuring
    before = status_kib("VmRSS")
    try:  # reset the peak to the current RSS (Linux >= 4.0); else the peak stays an upper bound
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass
    info = store.upload_file("acme/big", Path(path), {"source_name": "big.bin"})
    peak = status_kib("VmHWM")
    print(json.dumps({"size": info.size, "growth_kib": peak - before, "before_kib": before}))
""")


@pytest.mark.slow
def test_200_mb_upload_keeps_memory_bounded(s3_endpoint: str, raw: Any, tmp_path: Path) -> None:
    size = 200 * 1000 * 1000
    path = tmp_path / "big.bin"
    with path.open("wb") as handle:  # sparse: no 200 MB written to disk by the test
        handle.truncate(size)
    bucket = unique_bucket()
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, s3_endpoint, bucket, str(path)],
        capture_output=True, text=True, cwd=ROOT, timeout=240, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    growth_mb = measured["growth_kib"] / 1024
    print(f"\npeak RSS growth while uploading {size // 10**6} MB to S3: {growth_mb:.1f} MB "
          f"(RSS before: {measured['before_kib'] / 1024:.0f} MB)")
    assert measured["size"] == size
    head = raw.head_object(Bucket=bucket, Key="acme/big")
    assert head["ContentLength"] == size
    assert head["ETag"].endswith('-24"')  # 8 MiB parts
    assert growth_mb < 64
