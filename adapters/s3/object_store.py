"""The ObjectStore port on Amazon S3 (or any S3-compatible store) through boto3.

- The boto3 client is built on first use, never at import or construction, and built again
  in a process whose id differs from the one that built it (a forked Celery child gets its own
  client and connection pool).
- ``upload_file`` streams the file from disk with boto3's managed transfer: a single PUT below
  ``multipart_threshold``, a multipart upload of ``multipart_chunksize`` parts above it, at most
  ``max_concurrency`` parts in flight. Memory stays bounded by the parts in flight, not by the
  file size. S3 makes a PUT or a completed multipart upload visible whole or not at all.
- User metadata travels as ``x-amz-meta-*`` headers, which must be ASCII: values that are not
  printable ASCII are sent as RFC 2047 ``=?UTF-8?B?...?=`` words (the form S3 itself uses) and
  decoded again by ``head``. Names must be lower-case header tokens, since S3 lower-cases them.
- Every boto3/botocore error is translated into our error kinds in one place,
  :func:`translate_error`; messages name the bucket and key, never credentials. botocore's
  standard retry mode has already retried throttling, 5xx and lost connections
  ``max_attempts`` times (in all) before an error reaches us.
- The credentials need s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket (without
  ListBucket, S3 answers 403 instead of 404 for a missing key, which is a PermanentError here),
  plus s3:CreateBucket when ``create_bucket`` is on.
"""

import base64
import binascii
import io
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from adapters.per_process import PerProcess
from adapters.ports import ListedObject, ObjectInfo
from adapters.streams import BodyStream
from domain.errors import (
    ConfigurationError,
    ConversaError,
    NotFoundError,
    PermanentError,
    TransientError,
)

MIB = 1024 * 1024
#: S3's smallest part (all but the last part of a multipart upload).
MIN_PART_SIZE = 5 * MIB
#: S3's longest key, in UTF-8 bytes.
MAX_KEY_BYTES = 1024
#: S3's limit on user metadata: names and values together, in UTF-8 bytes.
MAX_METADATA_BYTES = 2048
SSE_MODES = ("AES256", "aws:kms")
#: Shorter "secrets" (test values) are not blanked: blanking them would garble every message.
MIN_SECRET_LENGTH = 8
#: Read buffer of the stream ``open`` returns.
READ_BUFFER = 1 * MIB

#: Error codes S3 (or an S3-compatible store) sends when trying again later may pass.
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
        "PriorRequestNotComplete",
    }
)
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 509})
#: Codes of a missing object; "404"/"NotFound" is what a HEAD (which has no body) reports.
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})

_METADATA_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_ENCODED_WORD = re.compile(r"=\?utf-8\?b\?([A-Za-z0-9+/]*={0,2})\?=", re.IGNORECASE)


def validate_key(key: str) -> str:
    """The key itself, or PermanentError when it could escape the tenant's prefix or is invalid.

    Rejected, as by the filesystem adapter: empty keys, keys over 1,024 UTF-8 bytes, absolute
    keys, NUL and other control characters, backslashes, empty segments (``a//b``, a trailing
    slash) and segments starting with a dot (``.``, ``..``, hidden names).
    """
    if not isinstance(key, str) or not key:
        raise PermanentError("object key must be a non-empty string")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise PermanentError(f"object key longer than {MAX_KEY_BYTES} bytes")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key) or "\\" in key:
        raise PermanentError(f"object key {key!r} contains a control character or a backslash")
    if key.startswith("/"):
        raise PermanentError(f"object key {key!r} is absolute")
    for segment in key.split("/"):
        if not segment:
            raise PermanentError(f"object key {key!r} has an empty segment")
        if segment.startswith("."):
            raise PermanentError(f"object key {key!r} has a segment starting with a dot")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise PermanentError(f"object key {key!r} is not valid Unicode") from None
    return key


def encode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """S3 user metadata for ``metadata``: ASCII-safe values, checked names, within 2 KB."""
    encoded: dict[str, str] = {}
    total = 0
    for name, value in metadata.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise PermanentError("object metadata must map strings to strings")
        if not _METADATA_NAME.fullmatch(name):
            raise PermanentError(
                f"metadata name {name!r} must be lower-case ASCII letters, digits, '-', '_' "
                "or '.' (S3 sends names as case-insensitive HTTP headers)")
        wire = _encode_value(value)
        encoded[name] = wire
        total += len(name) + len(wire)
    if total > MAX_METADATA_BYTES:
        raise PermanentError(
            f"object metadata takes {total} bytes as S3 headers, the limit is "
            f"{MAX_METADATA_BYTES}")
    return encoded


def decode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """The metadata ``encode_metadata`` wrote (and plain ASCII values written by others)."""
    return {name.lower(): _decode_value(value) for name, value in metadata.items()}


def _encode_value(value: str) -> str:
    plain = (
        value != ""
        and value.isascii()
        and value.isprintable()
        and value == value.strip()
        and not value.startswith("=?")
    )
    if plain:
        return value
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise PermanentError("object metadata value is not valid Unicode") from None
    return f"=?UTF-8?B?{base64.b64encode(raw).decode('ascii')}?="


def _decode_value(value: str) -> str:
    match = _ENCODED_WORD.fullmatch(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match.group(1), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return value


def translate_error(
    exc: BaseException,
    *,
    bucket: str,
    key: str | None,
    action: str,
    secrets: tuple[str, ...] = (),
) -> ConversaError:
    """Our error for a boto3/botocore exception met while doing ``action`` on bucket/key.

    Throttling, 5xx, timeouts and lost connections are transient; a missing object is
    NotFoundError; anything else the service refused (access, missing bucket, bad credentials,
    other 4xx) and configuration errors are permanent. ``secrets`` are blanked from messages.
    """
    from boto3.exceptions import RetriesExceededError, S3UploadFailedError
    from botocore import exceptions as bce

    where = f"s3://{bucket}/{key}" if key is not None else f"s3://{bucket}"

    def message(detail: str) -> str:
        text = f"S3 {action} {where}: {detail}"
        for secret in secrets:
            if len(secret) >= MIN_SECRET_LENGTH:
                text = text.replace(secret, "***")
        return text

    if isinstance(exc, ConversaError):
        return exc
    if isinstance(exc, S3UploadFailedError):
        # boto3 re-raises a transfer's ClientError as S3UploadFailedError (chained implicitly).
        inner = exc.__cause__ or exc.__context__
        if inner is not None and inner is not exc:
            return translate_error(inner, bucket=bucket, key=key, action=action, secrets=secrets)
        return TransientError(message("upload failed"))
    if isinstance(exc, RetriesExceededError) and isinstance(exc.last_exception, BaseException):
        return translate_error(
            exc.last_exception, bucket=bucket, key=key, action=action, secrets=secrets)
    if isinstance(exc, bce.ClientError):
        return _translate_client_error(exc, key, message)
    if isinstance(
        exc,
        bce.ConnectionError  # EndpointConnectionError, ConnectTimeoutError, SSL, proxy
        | bce.HTTPClientError  # ReadTimeoutError, ConnectionClosedError, ResponseStreamingError
        | bce.IncompleteReadError
        | bce.ChecksumError
        | bce.CredentialRetrievalError,
    ):
        return TransientError(message(f"{type(exc).__name__}: {exc}"))
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return PermanentError(message("no usable S3 credentials are configured"))
    if isinstance(exc, bce.BotoCoreError):
        return PermanentError(message(f"{type(exc).__name__}: {exc}"))
    if isinstance(exc, OSError):  # sockets, timeouts, reading the upload source
        return TransientError(message(f"{type(exc).__name__}: {exc.strerror or exc}"))
    return PermanentError(message(f"unexpected {type(exc).__name__}: {exc}"))


def _translate_client_error(
    exc: Any, key: str | None, message: Callable[[str], str]
) -> ConversaError:
    response: Mapping[str, Any] = getattr(exc, "response", None) or {}
    error: Mapping[str, Any] = response.get("Error") or {}
    meta: Mapping[str, Any] = response.get("ResponseMetadata") or {}
    code = str(error.get("Code") or "")
    status = meta.get("HTTPStatusCode")
    status = int(status) if isinstance(status, int | str) and str(status).isdigit() else 0
    text = str(error.get("Message") or "")[:200]
    detail = f"{code or 'error'} (HTTP {status or '?'})" + (f": {text}" if text else "")
    if code in TRANSIENT_CODES or status in TRANSIENT_STATUSES or status >= 500:
        headers: Mapping[str, str] = meta.get("HTTPHeaders") or {}
        return TransientError(message(detail), retry_after=_retry_after(headers))
    if key is not None and (code in NOT_FOUND_CODES or (status == 404 and not code)):
        return NotFoundError(message(f"no such object ({detail})"))
    return PermanentError(message(detail))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class _BodyReader(BodyStream):
    """A botocore StreamingBody as a raw binary stream whose errors are ours."""

    def __init__(self, body: Any, store: "S3ObjectStore", key: str) -> None:
        super().__init__(body)
        self._store = store
        self._key = key

    def readinto(self, buffer: Any) -> int:
        try:
            return int(self._body.readinto(buffer))
        except Exception as exc:
            raise self._store._error(exc, self._key, "read") from exc


class S3ObjectStore:
    """Objects in one S3 bucket; see the module docstring for what it guarantees."""

    def __init__(
        self,
        bucket: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        sse: str | None = None,
        kms_key_id: str | None = None,
        create_bucket: bool = False,
        multipart_threshold: int = 8 * MIB,
        multipart_chunksize: int = 8 * MIB,
        max_concurrency: int = 4,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        max_attempts: int = 3,
    ) -> None:
        if not bucket or not isinstance(bucket, str):
            raise ConfigurationError("S3 bucket name is empty")
        if sse is not None and sse not in SSE_MODES:
            raise ConfigurationError(f"S3 server-side encryption must be one of {SSE_MODES}")
        if kms_key_id and sse != "aws:kms":
            raise ConfigurationError("an S3 KMS key id needs server-side encryption 'aws:kms'")
        if bool(access_key_id) != bool(secret_access_key):
            raise ConfigurationError("S3 access key id and secret access key go together")
        if multipart_chunksize < MIN_PART_SIZE:
            raise ConfigurationError(
                f"S3 multipart chunk size must be at least {MIN_PART_SIZE} bytes")
        if multipart_threshold < 1:
            raise ConfigurationError("S3 multipart threshold must be positive")
        if max_concurrency < 1 or max_attempts < 1:
            raise ConfigurationError("S3 max concurrency and max attempts must be at least 1")
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ConfigurationError("S3 timeouts must be positive")
        self._bucket = bucket
        self._region = region
        self._endpoint_url = endpoint_url
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._sse = sse
        self._kms_key_id = kms_key_id
        self._create_bucket = create_bucket
        self._multipart_threshold = multipart_threshold
        self._multipart_chunksize = multipart_chunksize
        self._max_concurrency = max_concurrency
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_attempts = max_attempts
        self._connection: PerProcess[Any] = PerProcess(self._connect)
        self._transfer_config: Any = None
        self._bucket_known = False

    @property
    def bucket(self) -> str:
        return self._bucket

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self._bucket!r}, endpoint_url={self._endpoint_url!r})"

    # -- client ------------------------------------------------------------------------------

    def _client(self) -> Any:
        """The process's boto3 client, built (and the bucket created) on first use; a fresh
        process (or a fork) never reuses the parent's client or pool."""
        return self._connection.get()

    def _connect(self) -> Any:
        client = self._build_client()
        if self._create_bucket:
            self._ensure_bucket(client)
        return client

    def _build_client(self) -> Any:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        try:
            session = boto3.session.Session(
                aws_access_key_id=self._access_key_id,
                aws_secret_access_key=self._secret_access_key,
                region_name=self._region,
            )
            config = Config(
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                retries={"total_max_attempts": self._max_attempts, "mode": "standard"},
                max_pool_connections=max(10, self._max_concurrency + 2),
                # A custom endpoint (MinIO, moto, ...) rarely resolves bucket sub-domains.
                s3={"addressing_style": "path" if self._endpoint_url else "auto"},
            )
            client = session.client("s3", endpoint_url=self._endpoint_url, config=config)
        except Exception as exc:
            raise self._error(exc, None, "create client") from exc
        self._transfer_config = TransferConfig(
            multipart_threshold=self._multipart_threshold,
            multipart_chunksize=self._multipart_chunksize,
            max_concurrency=self._max_concurrency,
            use_threads=True,
        )
        return client

    def _ensure_bucket(self, client: Any) -> None:
        """Create the bucket unless it exists (called once per process, under the lock)."""
        from botocore.exceptions import ClientError

        try:
            client.head_bucket(Bucket=self._bucket)
            self._bucket_known = True
            return
        except ClientError as exc:
            if _status(exc) != 404:
                raise self._error(exc, None, "check bucket") from exc
        except Exception as exc:
            raise self._error(exc, None, "check bucket") from exc
        kwargs: dict[str, Any] = {"Bucket": self._bucket}
        region = client.meta.region_name
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            client.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) != "BucketAlreadyOwnedByYou":  # another process created it first
                raise self._error(exc, None, "create bucket") from exc
        except Exception as exc:
            raise self._error(exc, None, "create bucket") from exc
        self._bucket_known = True

    def _check_bucket_exists(self, client: Any) -> None:
        """A HEAD's 404 cannot tell a missing key from a missing bucket: ask once per store."""
        if self._bucket_known:
            return
        from botocore.exceptions import ClientError

        try:
            client.head_bucket(Bucket=self._bucket)
        except ClientError as exc:
            if _status(exc) == 404:
                raise PermanentError(f"S3 bucket {self._bucket} does not exist") from exc
            raise self._error(exc, None, "check bucket") from exc
        except Exception as exc:
            raise self._error(exc, None, "check bucket") from exc
        self._bucket_known = True

    def _error(self, exc: BaseException, key: str | None, action: str) -> ConversaError:
        secrets = tuple(s for s in (self._secret_access_key, self._access_key_id) if s)
        return translate_error(exc, bucket=self._bucket, key=key, action=action, secrets=secrets)

    def _write_args(self, metadata: Mapping[str, str]) -> dict[str, Any]:
        args: dict[str, Any] = {"Metadata": encode_metadata(metadata)}
        if self._sse is not None:
            args["ServerSideEncryption"] = self._sse
            if self._kms_key_id:
                args["SSEKMSKeyId"] = self._kms_key_id
        return args

    # -- the port ----------------------------------------------------------------------------

    def upload_file(self, key: str, path: Path, metadata: Mapping[str, str]) -> ObjectInfo:
        validate_key(key)
        args = self._write_args(metadata)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            raise PermanentError(f"upload source {path} does not exist") from None
        except OSError as exc:
            raise PermanentError(f"upload source {path} is not readable: {exc.strerror}") from exc
        if not Path(path).is_file():
            raise PermanentError(f"upload source {path} is not a file")
        client = self._client()
        try:
            client.upload_file(
                os.fspath(path), self._bucket, key, ExtraArgs=args, Config=self._transfer_config)
        except Exception as exc:
            raise self._error(exc, key, "upload") from exc
        return ObjectInfo(key=key, size=size, metadata=dict(metadata))

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str]) -> ObjectInfo:
        validate_key(key)
        args = self._write_args(metadata)
        client = self._client()
        try:
            client.put_object(Bucket=self._bucket, Key=key, Body=bytes(data), **args)
        except Exception as exc:
            raise self._error(exc, key, "put") from exc
        return ObjectInfo(key=key, size=len(data), metadata=dict(metadata))

    def open(self, key: str) -> BinaryIO:
        """A buffered stream of the object's bytes, read from the network as it is read."""
        validate_key(key)
        client = self._client()
        try:
            response = client.get_object(Bucket=self._bucket, Key=key)
        except Exception as exc:
            raise self._error(exc, key, "get") from exc
        return io.BufferedReader(_BodyReader(response["Body"], self, key), READ_BUFFER)

    def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        client = self._client()
        try:
            response = client.get_object(Bucket=self._bucket, Key=key)
            with response["Body"] as body:
                return bytes(body.read())
        except Exception as exc:
            raise self._error(exc, key, "get") from exc

    def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        client = self._client()
        try:
            response = client.head_object(Bucket=self._bucket, Key=key)
        except Exception as exc:
            error = self._error(exc, key, "head")
            if isinstance(error, NotFoundError):
                self._check_bucket_exists(client)
                return None
            raise error from exc
        return ObjectInfo(
            key=key,
            size=int(response.get("ContentLength", 0)),
            metadata=decode_metadata(response.get("Metadata") or {}),
        )

    def list_objects(self, prefix: str, page_size: int = 1000) -> Iterator[ListedObject]:
        """The objects under ``prefix`` in key order, read one page of ``page_size`` keys at
        a time with boto3's paginator (S3 answers at most 1,000 a page)."""
        client = self._client()
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size})
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    yield ListedObject(key=item["Key"], size=int(item["Size"]),
                                       etag=str(item.get("ETag", "")).strip('"'),
                                       modified=item["LastModified"])
        except ConversaError:
            raise
        except Exception as exc:
            raise self._error(exc, prefix or None, "list") from exc

    def delete_file(self, key: str) -> None:
        validate_key(key)
        client = self._client()
        try:
            client.delete_object(Bucket=self._bucket, Key=key)
        except Exception as exc:
            error = self._error(exc, key, "delete")
            if isinstance(error, NotFoundError):
                return  # some S3-compatible stores answer 404 for a missing key
            raise error from exc


def _code(exc: Any) -> str:
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code") or "")


def _status(exc: Any) -> int:
    meta = (getattr(exc, "response", None) or {}).get("ResponseMetadata", {})
    status = meta.get("HTTPStatusCode")
    return status if isinstance(status, int) else 0
