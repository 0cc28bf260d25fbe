"""Opening what an upload event points at: a local file or an object already stored."""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO
from urllib.parse import unquote, urlparse

from adapters.ports import ObjectStore
from domain.errors import PermanentError

OBJECT_SCHEME = "object:"


def file_uri(path: Path) -> str:
    return path.resolve().as_uri()


@contextmanager
def open_source(uri: str, objects: ObjectStore) -> Iterator[BinaryIO]:
    if uri.startswith(OBJECT_SCHEME):
        with objects.open(uri.removeprefix(OBJECT_SCHEME)) as stream:
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
        if size > limit:
            raise PermanentError(f"file too large: over the limit of {limit} bytes")
        digest.update(block)
        target.write(block)
    target.flush()
    return digest.hexdigest(), size
