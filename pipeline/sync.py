"""Source sync: make a tenant's documents follow a folder or a bucket prefix.

What is new or changed is ingested, what is unchanged is left alone (nothing is enqueued, no
job recorded), and with ``delete`` the documents whose source is gone are deleted, as
LlamaIndex's upserts-and-delete strategy does. Unchanged means: the source's version (a
file's size and mtime, an object's entity tag and size) equals the one the document's served
version was ingested from; a file whose version changed but whose bytes hash to the served
content is unchanged too (a ``touch``). A sync's job id is derived from the source, its
version and the served version it replaces, so a sync run again while the first one's jobs
are in flight finds them and enqueues nothing new.
"""

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from adapters.ports import DocumentsBySource
from domain.documents import Document, document_id
from domain.errors import ConfigurationError, NotFoundError, PermanentError
from domain.job import IngestionJob
from domain.uploads import check_size
from pipeline.bootstrap import Services
from pipeline.listing import Found, remote_event, selected, walk
from pipeline.sources import S3_SCHEME, URL_SCHEMES, parse_s3_uri

Action = Literal["new", "changed", "unchanged", "in-flight", "delete", "refused"]


@dataclass(frozen=True)
class SyncItem:
    """What sync did (or, in a dry run, would do) with one source."""

    action: Action
    source: str
    document_id: str
    job: IngestionJob | None = None
    reason: str = ""


def sync_job_id(tenant: str, source: str, version: str | None, replaces: str | None) -> str:
    seed = "\x00".join((tenant, source, version or "", replaces or ""))
    return "sync" + hashlib.sha256(seed.encode()).hexdigest()[:28]


def sync(services: Services, tenant: str, reference: str, *, delete: bool = False,
         dry_run: bool = False, include: Sequence[str] = (),
         exclude: Sequence[str] = ()) -> Iterator[SyncItem]:
    """Sync ``reference`` (a folder, a file or ``s3://bucket/prefix``) into ``tenant``,
    yielding one item per source as it goes (a listing is never held whole; the sources
    seen are, as a set of names, for ``delete``)."""
    if reference.startswith(URL_SCHEMES):
        raise PermanentError("sync takes a folder or an s3://bucket/prefix, not a URL")
    seen: set[str] = set()
    for found in walk(services, reference, include, exclude):
        seen.add(found.source)
        yield _sync_one(services, tenant, found, dry_run)
    if delete:
        yield from _delete_gone(services, tenant, reference, seen, dry_run, include, exclude)


def _sync_one(services: Services, tenant: str, found: Found, dry_run: bool) -> SyncItem:
    doc_id = document_id(tenant, found.source)
    try:
        check_size(found.size, services.settings.max_upload_bytes, name=found.source)
    except PermanentError as exc:
        return SyncItem("refused", found.source, doc_id, reason=str(exc))
    document = services.documents.get(tenant, doc_id)
    served = document.served if document is not None and not document.deleted else None
    if served is not None and _unchanged(services, found, served.job_id, served.sha256):
        return SyncItem("unchanged", found.source, doc_id)
    action: Action = "new" if served is None else "changed"
    job_id = sync_job_id(tenant, found.source, found.version, served.job_id if served else None)
    try:
        return SyncItem("in-flight", found.source, doc_id, services.jobs.get(job_id))
    except NotFoundError:
        pass
    if dry_run:
        return SyncItem(action, found.source, doc_id)
    return SyncItem(action, found.source, doc_id, _enqueue(services, tenant, found, job_id))


def _unchanged(services: Services, found: Found, served_job: str, served_sha: str) -> bool:
    try:
        if services.jobs.get(served_job).source_version == found.version:
            return True
    except NotFoundError:
        pass
    if found.path is None:
        return False
    from pipeline.producer import sha256_of

    return sha256_of(found.path) == served_sha


def _enqueue(services: Services, tenant: str, found: Found, job_id: str) -> IngestionJob:
    from pipeline.producer import enqueue, upload_file_event
    from pipeline.uploads import enqueue_staged

    if found.path is None:
        return enqueue(services, remote_event(tenant, found), job_id)
    return enqueue_staged(services, upload_file_event(services, found.path, tenant), job_id)


def _delete_gone(services: Services, tenant: str, reference: str, seen: set[str],
                 dry_run: bool, include: Sequence[str], exclude: Sequence[str]
                 ) -> Iterator[SyncItem]:
    """Delete the documents under ``reference`` whose source was not seen. Only documents
    the same globs select are considered: a sync of ``*.md`` leaves the PDFs alone."""
    listing = services.documents
    if not isinstance(listing, DocumentsBySource):
        raise ConfigurationError("this document repository cannot list documents by source")
    prefix, base = _prefixes(reference)
    gone: list[Document] = []
    for document in listing.documents_under(tenant, prefix):
        if document.deleted or document.source in seen:
            continue
        if selected(document.source.removeprefix(base), include, exclude):
            gone.append(document)
        if len(gone) >= 500:
            yield from _delete_batch(services, tenant, gone, dry_run)
            gone = []
    yield from _delete_batch(services, tenant, gone, dry_run)


def _delete_batch(services: Services, tenant: str, documents: list[Document], dry_run: bool
                  ) -> Iterator[SyncItem]:
    """Deleted after a batch of the listing was read, so no delete runs inside the cursor."""
    from pipeline.documents import delete_document

    for document in documents:
        if not dry_run:
            delete_document(services, tenant, document.document_id)
        yield SyncItem("delete", document.source, document.document_id)


def _prefixes(reference: str) -> tuple[str, str]:
    """(the source prefix of the documents under ``reference``, the part globs see past)."""
    if reference.startswith(S3_SCHEME):
        bucket, prefix = parse_s3_uri(reference)
        base = prefix if prefix.endswith("/") or not prefix else prefix + "/"
        return f"{S3_SCHEME}{bucket}/{prefix}", f"{S3_SCHEME}{bucket}/{base}"
    from pathlib import Path

    root = Path(reference).resolve()
    if root.is_file():
        return str(root), str(root.parent) + "/"
    folder = str(root).rstrip("/") + "/"
    return folder, folder
