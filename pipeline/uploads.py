"""Producer use cases for uploads that arrive as bytes (HTTP) or as an object already stored.

Either way the bytes end up under ``<tenant>/incoming/<id>`` and the event points there with
the ``object:`` scheme; the store stage moves them to their content-addressed key and removes
the staged copy. Nothing is stored for an upload these checks refuse: the event (and so every
limit on its fields) is built and checked before the first byte is staged.
"""

from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

from domain.documents import incoming_key, sanitize_filename
from domain.errors import ConversaError, NotFoundError
from domain.events import UploadEvent, upload_event
from domain.job import IngestionJob
from domain.uploads import check_size, check_type
from pipeline.bootstrap import Services
from pipeline.callbacks import check_callback_url
from pipeline.producer import enqueue, new_job_id, staged
from pipeline.sources import OBJECT_SCHEME, file_uri


def check_upload_start(declared_type: str | None, head: bytes) -> None:
    """Checks on an upload's first bytes, so a refused one stops before it is read whole."""
    check_type(declared_type, head)


def staged_upload_event(services: Services, tenant: str, path: Path, source_name: str,
                        content_type: str | None = None, source: str | None = None,
                        *, staging_id: str | None = None,
                        callback_url: str | None = None,
                        metadata: Mapping[str, object] | None = None) -> UploadEvent:
    """Put a received file (a local temporary copy) in the object store under
    ``<tenant>/incoming/<staging id>`` (a new id unless given) and return the event for it.
    The document's identity is ``source`` when given, else the sanitized file name: uploading
    the same name again makes a new version of the same document."""
    size = path.stat().st_size
    check_size(size, services.settings.max_upload_bytes, complete=True)
    with path.open("rb") as handle:
        check_type(content_type, handle.read(8192))
    check_callback_url(services, callback_url)
    name = sanitize_filename(source_name)
    event = upload_event(tenant=tenant, source=source or name, source_uri=file_uri(path),
                         source_name=name, size=size, callback_url=callback_url,
                         metadata=dict(metadata or {}))
    return staged(services, event, path, staging_id)


def unstage(services: Services, event: UploadEvent, job_id: str) -> None:
    """Remove the bytes ``staged_upload_event`` put under ``incoming/`` for an upload that
    was then refused, unless a job record for them exists (its stages need them; the
    reconciler re-drives it). When even that lookup fails the bytes go too: the client was
    told the upload failed, and a job that did get recorded then fails at its store stage
    with the reason, rather than bytes being kept that nothing will ever remove."""
    try:
        services.jobs.get(job_id)
    except ConversaError:  # no such job, or the job store is unreachable
        pass
    else:
        return
    services.objects.delete_file(event.source_uri.removeprefix(OBJECT_SCHEME))


def stored_object_event(services: Services, tenant: str, object_key: str,
                        source_name: str | None = None, source: str | None = None,
                        callback_url: str | None = None,
                        metadata: Mapping[str, object] | None = None) -> UploadEvent:
    """The event for bytes a producer already put under ``<tenant>/incoming/``. Any other key,
    and another tenant's key, is NotFoundError, as is a missing object."""
    prefix = incoming_key(tenant, "")
    rest = object_key.removeprefix(prefix)
    if (not object_key.startswith(prefix) or not rest
            or any(part in ("", ".", "..") for part in rest.split("/"))):
        raise NotFoundError(f"no object {object_key} (uploads are named under {prefix})")
    info = services.objects.head(object_key)
    if info is None:
        raise NotFoundError(f"no object {object_key}")
    check_size(info.size, services.settings.max_upload_bytes, complete=True)
    name = sanitize_filename(source_name or info.metadata.get("source_name") or rest)
    check_callback_url(services, callback_url)
    return upload_event(tenant=tenant, source=source or name,
                        source_uri=f"{OBJECT_SCHEME}{object_key}", source_name=name,
                        size=info.size, callback_url=callback_url,
                        metadata=dict(metadata or {}))


def enqueue_staged(services: Services, event: UploadEvent,
                   job_id: str | None = None) -> IngestionJob:
    """Enqueue an upload whose bytes this producer staged under ``<tenant>/incoming/``.

    When the job could not be recorded (MongoDB down, say) the caller gets the error and
    will upload again, so the staged copy would stay forever: ``unstage`` removes it unless
    the job was recorded after all (only its dispatch failed; the reconciler sends it on).
    """
    job_id = job_id or new_job_id()
    try:
        return enqueue(services, event, job_id)
    except Exception:
        # The error is what the caller hears, even when removing the bytes fails too.
        with suppress(ConversaError):
            unstage(services, event, job_id)
        raise


def url_event(services: Services, tenant: str, url: str, source: str | None = None,
              source_name: str | None = None, callback_url: str | None = None
              ) -> UploadEvent:
    """The event for a document at an ``http(s)://`` URL, which the store stage fetches.
    Refused at once (PermanentError) when it is no http(s) URL or its host resolves to an
    address outbound requests may not reach; every redirect is checked again when fetched."""
    from pipeline.listing import url_name

    services.urls.check(url)
    check_callback_url(services, callback_url)
    return upload_event(tenant=tenant, source=source or url, source_uri=url,
                        source_name=sanitize_filename(source_name or url_name(url)),
                        callback_url=callback_url)
