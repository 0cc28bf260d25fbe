"""What a producer ingests from a reference: a file, a folder, a bucket prefix or a URL.

Each is walked lazily (a bucket prefix page by page, a folder entry by entry), so a listing of
millions of keys is never held in memory. ``--include`` and ``--exclude`` globs are matched,
with ``fnmatch``'s rules (``*`` also matches ``/``), against the path relative to the folder or
prefix: ``*.md`` takes Markdown files at any depth, ``drafts/*`` leaves out a sub-folder.
"""

import fnmatch
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from domain.documents import sanitize_filename
from domain.errors import PermanentError
from domain.events import UploadEvent, upload_event
from pipeline.bootstrap import Services
from pipeline.sources import S3_SCHEME, URL_SCHEMES, file_uri, file_version, parse_s3_uri


@dataclass(frozen=True)
class Found:
    """One thing to ingest: ``source`` is the document's identity, ``uri`` where the bytes
    are, ``version`` what the source says its version is (size and mtime, an entity tag)."""

    source: str
    uri: str
    name: str
    size: int | None
    version: str | None
    path: Path | None = None


def selected(relative: str, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> bool:
    """Whether ``relative`` passes the globs: any include (or none given), and no exclude."""
    if include and not any(fnmatch.fnmatchcase(relative, g) for g in include):
        return False
    return not any(fnmatch.fnmatchcase(relative, g) for g in exclude)


def walk(services: Services, reference: str, include: Sequence[str] = (),
         exclude: Sequence[str] = ()) -> Iterator[Found]:
    """What ``reference`` holds that passes the globs, in a stable order."""
    if reference.startswith(URL_SCHEMES):
        services.urls.check(reference)
        yield Found(source=reference, uri=reference, name=url_name(reference), size=None,
                    version=None)
    elif reference.startswith(S3_SCHEME):
        yield from _walk_bucket(services, reference, include, exclude)
    else:
        yield from _walk_folder(Path(reference), include, exclude)


def url_name(url: str) -> str:
    path = PurePosixPath(url.split("?", 1)[0].split("#", 1)[0].split("://", 1)[-1])
    return sanitize_filename(path.name or "index.html")


def _walk_bucket(services: Services, uri: str, include: Sequence[str],
                 exclude: Sequence[str]) -> Iterator[Found]:
    bucket, prefix = parse_s3_uri(uri)
    base = prefix if prefix.endswith("/") or not prefix else prefix + "/"
    for listed in services.buckets.list_objects(bucket, prefix):
        if listed.key.endswith("/"):
            continue  # a "folder" placeholder, not a document
        relative = listed.key.removeprefix(base) if listed.key.startswith(base) else listed.key
        if selected(relative, include, exclude):
            yield Found(source=f"{S3_SCHEME}{bucket}/{listed.key}",
                        uri=f"{S3_SCHEME}{bucket}/{listed.key}",
                        name=sanitize_filename(listed.key), size=listed.size,
                        version=f"etag={listed.etag};size={listed.size}")


def _walk_folder(root: Path, include: Sequence[str], exclude: Sequence[str]) -> Iterator[Found]:
    if not root.exists():
        raise PermanentError(f"no such file or folder: {root}")
    if root.is_file():
        yield _found_file(root)
        return
    for folder, folders, files in os.walk(root):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if name.startswith(".") or not path.is_file():
                continue
            if selected(path.relative_to(root).as_posix(), include, exclude):
                yield _found_file(path)


def _found_file(path: Path) -> Found:
    resolved = path.resolve()
    stat = resolved.stat()
    return Found(source=str(resolved), uri=file_uri(resolved), name=path.name,
                 size=stat.st_size, version=file_version(stat), path=path)


def remote_event(tenant: str, found: Found,
                 metadata: Mapping[str, object] | None = None) -> UploadEvent:
    """The event for a bucket object or a URL: the store stage reads the bytes."""
    return upload_event(tenant=tenant, source=found.source, source_uri=found.uri,
                        source_name=found.name, size=found.size,
                        source_version=found.version, metadata=dict(metadata or {}))
