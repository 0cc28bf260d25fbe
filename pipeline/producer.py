"""The producer API: accept an upload, record it as a queued job, put it on the broker."""

import uuid
from pathlib import Path

from domain.documents import document_id, incoming_key, sanitize_filename
from domain.errors import PermanentError
from domain.events import UploadEvent
from domain.job import IngestionJob
from domain.status import JobStatus, Stage
from pipeline.bootstrap import Services
from pipeline.sources import OBJECT_SCHEME, file_uri


def new_job_id() -> str:
    return uuid.uuid4().hex


def enqueue(services: Services, event: UploadEvent, job_id: str | None = None) -> IngestionJob:
    """Create the job record (queued) and dispatch its stages. Idempotent by ``job_id``:
    enqueueing the same id again returns the existing job, and dispatches again only while
    it is still queued (a broker that was down the first time), which is harmless."""
    job = IngestionJob(
        job_id=job_id or new_job_id(),
        tenant=event.tenant,
        document_id=document_id(event.tenant, event.source),
        source=event.source,
        source_uri=event.source_uri,
        source_name=sanitize_filename(event.source_name),
        content_type=event.content_type,
        size=event.size,
    )
    stored = services.jobs.create(job)
    if stored.status is JobStatus.QUEUED:
        services.dispatcher.dispatch(stored.job_id, Stage.STORE)
    return stored


def upload_file_event(services: Services, path: Path, tenant: str,
                      source: str | None = None) -> UploadEvent:
    """An upload event for a local file that every worker can reach.

    With the filesystem object store the workers share this machine's disk, so the event
    points at the file itself. Otherwise the producer first puts the bytes in the object store
    under ``<tenant>/incoming/<id>`` (streamed) and the event points there; the store stage
    moves them to their content-addressed key.
    """
    event = file_event(path, tenant, services.settings.max_upload_bytes, source)
    if services.settings.object_store == "filesystem":
        return event
    key = incoming_key(tenant, new_job_id())
    services.objects.upload_file(key, path.resolve(), {"source_name": event.source_name})
    return event.model_copy(update={"source_uri": f"{OBJECT_SCHEME}{key}"})


def file_event(path: Path, tenant: str, max_bytes: int, source: str | None = None) -> UploadEvent:
    """An upload event for a local file, checked before anything is enqueued."""
    if not path.exists():
        raise PermanentError(f"no such file: {path}")
    if not path.is_file():
        raise PermanentError(f"not a regular file: {path}")
    size = path.stat().st_size
    if size > max_bytes:
        raise PermanentError(f"file too large: {path} is {size} bytes, the limit is {max_bytes}")
    resolved = path.resolve()
    return UploadEvent(
        tenant=tenant,
        source=source or str(resolved),
        source_uri=file_uri(resolved),
        source_name=path.name,
        size=size,
    )
