"""The producer API: accept an upload, record it as a queued job, put it on the broker."""

import hashlib
import uuid
from collections.abc import Mapping
from pathlib import Path

from domain.documents import Document, document_id, incoming_key, sanitize_filename
from domain.errors import PermanentError
from domain.events import UploadEvent, upload_event
from domain.job import IngestionJob, utcnow
from domain.status import FORWARD_ORDER, JobStatus, Stage
from domain.uploads import check_size
from pipeline.bootstrap import Services
from pipeline.callbacks import announce
from pipeline.dedupe import reusable_version, reused_fields
from pipeline.fairness import tenant_lane
from pipeline.sources import OBJECT_SCHEME, file_uri, file_version


def new_job_id() -> str:
    return uuid.uuid4().hex


def enqueue(services: Services, event: UploadEvent, job_id: str | None = None) -> IngestionJob:
    """Create the job record (queued) and dispatch its stages. Idempotent by ``job_id``:
    enqueueing the same id again returns the existing job, and dispatches again only while
    it is still queued (a broker that was down the first time), which is harmless.

    When the producer hashed the bytes and they already are the document's current version
    (``pipeline.dedupe``), the job is recorded done at once, reusing that version, and
    nothing goes on the broker."""
    job = IngestionJob(
        job_id=job_id or new_job_id(),
        tenant=event.tenant,
        document_id=document_id(event.tenant, event.source),
        source=event.source,
        source_uri=event.source_uri,
        source_name=sanitize_filename(event.source_name),
        content_type=event.content_type,
        size=event.size,
        source_version=event.source_version,
        callback_url=event.callback_url,
        metadata=event.metadata,
    )
    reused = (reusable_version(services, job.tenant, job.document_id, event.sha256,
                               metadata=job.metadata) if event.sha256 else None)
    if reused is not None:
        job = _reusing(services, job, reused)
    stored = services.jobs.create(job)
    if stored.status is JobStatus.QUEUED or (reused and stored.status is JobStatus.DONE):
        announce(services, stored)  # queued, or done at once
    if stored.status is JobStatus.DONE and event.source_uri.startswith(OBJECT_SCHEME):
        services.objects.delete_file(event.source_uri.removeprefix(OBJECT_SCHEME))
    if stored.status is JobStatus.QUEUED:
        services.dispatcher.dispatch(stored.job_id, Stage.STORE,
                                     tenant_lane(services, stored.tenant))
    return stored


def _reusing(services: Services, job: IngestionJob, document: Document) -> IngestionJob:
    """``job`` done at once: it brings the content ``document`` already serves."""
    now = utcnow()
    passed = [status.value for status in FORWARD_ORDER[1:]]
    return IngestionJob.model_validate({
        **job.model_dump(), **reused_fields(services, document),
        "status": JobStatus.DONE, "sha256": document.sha256, "size": document.size,
        "object_key": document.object_key, "stage_times": dict.fromkeys(passed, now),
    })


def upload_file_event(services: Services, path: Path, tenant: str,
                      source: str | None = None, *,
                      metadata: Mapping[str, object] | None = None) -> UploadEvent:
    """An upload event for a local file that every worker can reach.

    With the filesystem object store the workers share this machine's disk, so the event
    points at the file itself. Otherwise the producer first puts the bytes in the object store
    under ``<tenant>/incoming/<id>`` (streamed) and the event points there; the store stage
    moves them to their content-addressed key.
    """
    event = file_event(path, tenant, services.settings.max_upload_bytes, source,
                       metadata=metadata)
    if services.settings.object_store == "filesystem":
        return event
    return staged(services, event, path.resolve())


def staged(services: Services, event: UploadEvent, path: Path,
           staging_id: str | None = None) -> UploadEvent:
    """``event`` pointing at a copy of ``path`` (streamed) under ``<tenant>/incoming/<staging
    id>`` (a new id unless given), for workers that cannot read this producer's disk; the
    store stage moves the bytes to their content-addressed key and removes the copy."""
    key = incoming_key(event.tenant, staging_id or new_job_id())
    services.objects.upload_file(key, path, {"source_name": event.source_name})
    return event.model_copy(update={"source_uri": f"{OBJECT_SCHEME}{key}"})


def file_event(path: Path, tenant: str, max_bytes: int, source: str | None = None, *,
               hash_content: bool = True,
               metadata: Mapping[str, object] | None = None) -> UploadEvent:
    """An upload event for a local file, checked before anything is enqueued; with
    ``hash_content`` it carries the file's sha256, so unchanged content is not queued."""
    if not path.exists():
        raise PermanentError(f"no such file: {path}")
    if not path.is_file():
        raise PermanentError(f"not a regular file: {path}")
    stat = path.stat()
    size = stat.st_size
    check_size(size, max_bytes, name=str(path))
    resolved = path.resolve()
    return upload_event(
        tenant=tenant,
        source=source or str(resolved),
        source_uri=file_uri(resolved),
        source_name=path.name,
        size=size,
        sha256=sha256_of(resolved) if hash_content else None,
        source_version=file_version(stat),
        metadata=dict(metadata or {}),
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
