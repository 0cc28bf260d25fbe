"""Opening what an upload event points at: a local file, an object already stored, an object
of another bucket (``s3://bucket/key``) or a web page or file (``http(s)://``).

A bucket object or a URL is read by the store stage, not by the producer: the producer
(the CLI, the API) only checks the reference and records the job, so an API request answers at
once whatever the remote side's speed; the bytes are streamed once, hashed on the way, into
their content-addressed key; a timeout or a 5xx is retried with the stage's backoff; and the
broker message, as always, carries the job id alone (the reference is on the job record).
"""

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO
from urllib.parse import unquote, urlparse

from adapters.ports import BucketSource, ObjectStore, UrlFetcher
from domain.errors import PermanentError
from domain.uploads import check_size

OBJECT_SCHEME = "object:"
S3_SCHEME = "s3://"
URL_SCHEMES = ("http://", "https://")


def is_remote(reference: str) -> bool:
    """Whether ``reference`` names a bucket prefix or a URL rather than a local path."""
    return reference.startswith((S3_SCHEME, *URL_SCHEMES))


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key or prefix) of ``s3://bucket/key``; PermanentError without a bucket."""
    bucket, _, key = uri.removeprefix(S3_SCHEME).partition("/")
    if not uri.startswith(S3_SCHEME) or not bucket:
        raise PermanentError(f"not an s3://bucket/prefix reference: {uri}")
    return bucket, key


def file_version(stat: os.stat_result) -> str:
    """A local file's version as ``conversa sync`` compares it: size and modification time."""
    return f"size={stat.st_size};mtime_ns={stat.st_mtime_ns}"


def file_uri(path: Path) -> str:
    return path.resolve().as_uri()


@contextmanager
def open_source(uri: str, objects: ObjectStore, urls: UrlFetcher | None = None,
                buckets: BucketSource | None = None) -> Iterator[BinaryIO]:
    if uri.startswith(OBJECT_SCHEME):
        with objects.open(uri.removeprefix(OBJECT_SCHEME)) as stream:
            yield stream
        return
    if uri.startswith(URL_SCHEMES) and urls is not None:
        with urls.open(uri) as stream:
            yield stream
        return
    if uri.startswith(S3_SCHEME) and buckets is not None:
        with buckets.open(*parse_s3_uri(uri)) as stream:
            yield stream
        return
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise PermanentError(f"unsupported source reference scheme: {parsed.scheme or uri!r}")
    path = Path(unquote(parsed.path))
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise PermanentError(f"source file not found: {path.name}") from None
    except IsADirectoryError:
        raise PermanentError(f"source is a directory, not a file: {path.name}") from None
    except PermissionError:
        raise PermanentError(f"source file is not readable: {path.name}") from None
    with handle:
        yield handle


def copy_hashing(source: BinaryIO, target: IO[bytes], limit: int) -> tuple[str, int]:
    """Copy in blocks while hashing; refuse past ``limit`` bytes. Returns (sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    while block := source.read(1 << 20):
        size += len(block)
        check_size(size, limit)
        digest.update(block)
        target.write(block)
    target.flush()
    return digest.hexdigest(), size
