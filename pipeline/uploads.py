"""Producer use cases for uploads that arrive as bytes (HTTP) or as an object already stored.

Either way the bytes end up under ``<tenant>/incoming/<id>`` and the event points there with
the ``object:`` scheme; the store stage moves them to their content-addressed key and removes
the staged copy. Nothing is stored for an upload these checks refuse.
"""

from contextlib import suppress
from pathlib import Path

from domain.documents import incoming_key, sanitize_filename
from domain.errors import ConversaError, NotFoundError
from domain.events import UploadEvent
from domain.job import IngestionJob
from domain.uploads import check_not_empty, check_size, check_type
from pipeline.bootstrap import Services
from pipeline.producer import enqueue, new_job_id
from pipeline.sources import OBJECT_SCHEME


def check_upload_start(declared_type: str | None, head: bytes) -> None:
    """Checks on an upload's first bytes, so a refused one stops before it is read whole."""
    check_type(declared_type, head)


def staged_upload_event(services: Services, tenant: str, path: Path, source_name: str,
                        content_type: str | None = None, source: str | None = None
                        ) -> UploadEvent:
    """Put a received file (a local temporary copy) in the object store under
    ``<tenant>/incoming/<id>`` and return the event for it. The document's identity is
    ``source`` when given, else the sanitized file name: uploading the same name again makes
    a new version of the same document."""
    size = path.stat().st_size
    check_size(size, services.settings.max_upload_bytes)
    check_not_empty(size)
    with path.open("rb") as handle:
        check_type(content_type, handle.read(8192))
    name = sanitize_filename(source_name)
    key = incoming_key(tenant, new_job_id())
    services.objects.upload_file(key, path, {"source_name": name})
    return UploadEvent(tenant=tenant, source=source or name, source_uri=f"{OBJECT_SCHEME}{key}",
                       source_name=name, size=size)


def stored_object_event(services: Services, tenant: str, object_key: str,
                        source_name: str | None = None, source: str | None = None
                        ) -> UploadEvent:
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
    check_size(info.size, services.settings.max_upload_bytes)
    check_not_empty(info.size)
    name = sanitize_filename(source_name or info.metadata.get("source_name") or rest)
    return UploadEvent(tenant=tenant, source=source or name,
                       source_uri=f"{OBJECT_SCHEME}{object_key}", source_name=name,
                       size=info.size)


def enqueue_staged(services: Services, event: UploadEvent) -> IngestionJob:
    """Enqueue an upload whose bytes this producer staged under ``<tenant>/incoming/``.

    When the job could not be recorded (MongoDB down, say) the caller gets the error and
    will upload again, so the staged copy would stay forever: it is removed first. A job that
    was recorded keeps it (only its dispatch failed; the reconciler sends it on). When the
    record cannot be read back either, the copy is removed too: a job recorded after all then
    fails at its store stage with the reason, rather than bytes staying with no job.
    """
    job_id = new_job_id()
    try:
        return enqueue(services, event, job_id)
    except Exception:
        if event.source_uri.startswith(OBJECT_SCHEME) and not _recorded(services, job_id):
            with suppress(ConversaError):
                services.objects.delete_file(event.source_uri.removeprefix(OBJECT_SCHEME))
        raise


def _recorded(services: Services, job_id: str) -> bool:
    try:
        services.jobs.get(job_id)
    except ConversaError:  # NotFoundError, or MongoDB still unreachable
        return False
    return True
