"""The five stages, one function each: store, record, extract, embed, index.

Each takes a job id, does its work only if the job waits for it (see ``run_stage``), writes
large results to the object store (claim check) and moves the job on by compare-and-set.
"""

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import numpy as np

from domain.chunking import chunk_document
from domain.documents import (
    Document,
    VectorRecord,
    chunk_id,
    content_key,
    derived_sha,
    sanitize_filename,
    version_id,
)
from domain.errors import PermanentError
from domain.job import IngestionJob, utcnow
from domain.keywords import grounded
from domain.status import JobStatus, Stage
from pipeline import artifacts
from pipeline.bootstrap import Services
from pipeline.dedupe import (
    chunk_sizes,
    current_chunks_key,
    reusable_version,
    reused_fields,
)
from pipeline.sources import OBJECT_SCHEME, copy_hashing, open_source
from pipeline.stage_runner import run_stage

#: Keyword extraction reads at most this much text; enough for the keywords of a document.
KEYWORD_TEXT_LIMIT = 200_000
UPSERT_BATCH = 200
T = TypeVar("T")


def store(services: Services, job_id: str) -> IngestionJob:
    """Copy the upload into the object store under its content-addressed key."""

    def work(job: IngestionJob) -> Mapping[str, object]:
        limit = services.settings.max_upload_bytes
        if job.size is not None and job.size > limit:
            raise PermanentError(f"file too large: {job.size} bytes, the limit is {limit}")
        services.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with (
            open_source(job.source_uri, services.objects) as source,
            tempfile.NamedTemporaryFile(prefix="upload-", dir=services.settings.data_dir) as tmp,
        ):
            sha256, size = copy_hashing(source, tmp, limit)
            if size == 0:
                raise PermanentError("empty file: nothing to ingest")
            key = content_key(job.tenant, sha256)
            if services.objects.head(key) is None:
                metadata = {"source_name": sanitize_filename(job.source_name), "sha256": sha256}
                services.objects.upload_file(key, Path(tmp.name), metadata)
        return {"sha256": sha256, "size": size, "object_key": key}

    job = run_stage(services, Stage.STORE, job_id, work)
    if job.object_key is not None and job.source_uri.startswith(OBJECT_SCHEME):
        # The producer's staged copy is no longer needed once the content key is recorded.
        services.objects.delete_file(job.source_uri.removeprefix(OBJECT_SCHEME))
    return _reuse_current(services, job)


def _reuse_current(services: Services, job: IngestionJob) -> IngestionJob:
    """Identical content, already the document's current version (``reusable_version``): the
    job is done, with nothing parsed, embedded or upserted. Each step is still a
    compare-and-set, so a racing run changes nothing; the later stages' tasks find the job
    done and return."""
    if job.status is not JobStatus.STORED or job.sha256 is None:
        return job
    document = reusable_version(services, job.tenant, job.document_id, job.sha256, job.job_id)
    if document is None:
        return job
    fields = reused_fields(services, document)
    steps: list[tuple[JobStatus, JobStatus, Mapping[str, object]]] = [
        (JobStatus.STORED, JobStatus.RECORDED, {}),
        (JobStatus.RECORDED, JobStatus.EXTRACTED, {
            k: fields[k] for k in ("chunks_key", "chunk_count", "keywords", "content_type")}),
        (JobStatus.EXTRACTED, JobStatus.EMBEDDED, {"embeddings_key": fields["embeddings_key"]}),
        (JobStatus.EMBEDDED, JobStatus.INDEXED, {}),
        (JobStatus.INDEXED, JobStatus.DONE, {}),
    ]
    for expected, new, step_fields in steps:
        moved = services.jobs.transition(job.job_id, expected, new, step_fields)
        if moved is None:
            return services.jobs.get(job.job_id)
        job = moved
    return job


def record(services: Services, job_id: str) -> IngestionJob:
    """Record the document (identity: tenant + source) and the version this job brings."""

    def work(job: IngestionJob) -> Mapping[str, object]:
        sha256, object_key = _required(job.sha256, "sha256"), _required(job.object_key, "key")
        size = _required(job.size, "size")
        now = utcnow()
        previous = services.documents.get(job.tenant, job.document_id)
        live = previous if previous is not None and not previous.deleted else None
        services.documents.upsert(Document(
            document_id=job.document_id, tenant=job.tenant, source=job.source,
            source_name=sanitize_filename(job.source_name), content_type=job.content_type,
            sha256=sha256, object_key=object_key, job_id=job.job_id, size=size,
            created_at=previous.created_at if previous else now, updated_at=now,
            # the searchable version stays until this job's vectors are in (index stage)
            chunk_count=live.chunk_count if live else None,
            chunks_key=live.chunks_key if live else None,
            keywords=live.keywords if live else [],
        ))
        return {}

    return run_stage(services, Stage.RECORD, job_id, work)


def extract(services: Services, job_id: str) -> IngestionJob:
    """Parse, chunk (in the embedder's tokens) and pick keywords, stored once per content,
    chunker and tokenizer: content already chunked this way is not parsed again."""

    def work(job: IngestionJob) -> Mapping[str, object]:
        sha256, object_key = _required(job.sha256, "sha256"), _required(job.object_key, "key")
        size, overlap = chunk_sizes(services)
        key = current_chunks_key(services, job.tenant, sha256)
        if services.objects.head(key) is not None:
            chunk_set = artifacts.load_chunks(services.objects, key)
        else:
            parsed = services.parser.parse(services.objects.get_bytes(object_key))
            chunks = chunk_document(job.document_id, parsed, services.embedder.count_tokens,
                                    max_tokens=size, overlap_tokens=overlap)
            sample = parsed.text[:KEYWORD_TEXT_LIMIT]
            keywords = grounded(services.keywords.generate_keywords(
                sample, services.settings.chunking.max_keywords), sample)
            chunk_set = artifacts.ChunkSet(
                content_type=parsed.content_type, keywords=keywords,
                chunks=[artifacts.ChunkText(c.index, c.text, c.start, c.end, c.page, c.section)
                        for c in chunks])
            artifacts.save_chunks(services.objects, key, chunk_set)
        return {"chunks_key": key, "chunk_count": len(chunk_set.chunks),
                "keywords": chunk_set.keywords, "content_type": chunk_set.content_type}

    return run_stage(services, Stage.EXTRACT, job_id, work)


def embed(services: Services, job_id: str) -> IngestionJob:
    """Embed every chunk, stored once per content, chunking and model."""

    def work(job: IngestionJob) -> Mapping[str, object]:
        chunks_key = _required(job.chunks_key, "chunks")
        key = artifacts.embeddings_key(chunks_key, services.embedder.model_name)
        if services.objects.head(key) is None:
            chunk_set = artifacts.load_chunks(services.objects, chunks_key)
            texts = [c.text for c in chunk_set.chunks]
            batch = services.settings.embed_batch_size
            vectors: list[list[float]] = []
            for first in range(0, len(texts), batch):
                vectors.extend(services.embedder.generate_embeddings(texts[first:first + batch]))
            matrix = np.asarray(vectors, dtype=np.float32).reshape(
                len(texts), services.embedder.dimension)
            artifacts.save_embeddings(services.objects, key, matrix)
        return {"embeddings_key": key}

    return run_stage(services, Stage.EMBED, job_id, work)


def index(services: Services, job_id: str) -> IngestionJob:
    """Upsert the vectors (embedded -> indexed), then make this version the document's
    current one and drop the old version's surplus vectors (indexed -> done)."""
    job = run_stage(services, Stage.INDEX, job_id, lambda job: _upsert(services, job))
    if job.status is JobStatus.INDEXED:
        job = _finish(services, job)
    return job


def _upsert(services: Services, job: IngestionJob) -> Mapping[str, object]:
    """Upsert this version's vectors beside the current version's, unless the document is
    already current at exactly this version (identical content: nothing to write)."""
    chunks_key = _required(job.chunks_key, "chunks")
    document = services.documents.get(job.tenant, job.document_id)
    if document is not None and not document.deleted and document.chunks_key == chunks_key:
        return {}
    chunk_set = artifacts.load_chunks(services.objects, chunks_key)
    matrix = artifacts.load_embeddings(services.objects, _required(job.embeddings_key, "vectors"))
    if matrix.shape != (len(chunk_set.chunks), services.embedder.dimension):
        raise PermanentError(
            f"stored embeddings have shape {matrix.shape}, expected "
            f"({len(chunk_set.chunks)}, {services.embedder.dimension})")
    version = version_id(job.document_id, chunks_key)
    ingested_at = int(job.created_at.timestamp())
    records = [
        VectorRecord(
            id=chunk_id(version, chunk.index),
            values=matrix[chunk.index].tolist(),
            metadata={
                "document_id": job.document_id, "chunk_index": chunk.index,
                "source": job.source, "sha256": job.sha256 or "",
                "chunks_key": chunks_key, "content_type": chunk_set.content_type,
                "keywords": chunk_set.keywords, "ingested_at": ingested_at,
            },
        )
        for chunk in chunk_set.chunks
    ]
    for first in range(0, len(records), UPSERT_BATCH):
        services.vectors.upsert_vector(job.tenant, records[first:first + UPSERT_BATCH])
    return {}


def _finish(services: Services, job: IngestionJob) -> IngestionJob:
    """Make this job's version current, unless a newer job for the document took over or the
    document was deleted meanwhile; then remove every other version's vectors (search shows
    only the current version meanwhile) and the old version's objects nobody shares."""
    chunk_count = _required(job.chunk_count, "chunk count")
    chunks_key = _required(job.chunks_key, "chunks")
    version = version_id(job.document_id, chunks_key)
    current = {chunk_id(version, i) for i in range(chunk_count)}
    document = services.documents.get(job.tenant, job.document_id)
    if document is None or document.deleted:
        # Deleted while this job was on its way: its vectors must not linger.
        services.vectors.delete_ids(job.tenant, sorted(current))
    elif document.job_id == job.job_id:
        services.documents.upsert(document.model_copy(update={
            "chunk_count": job.chunk_count, "chunks_key": chunks_key,
            "keywords": job.keywords, "content_type": job.content_type,
            "updated_at": utcnow(),
        }))
        # Every other version's ids, and ids from before versions (``<document id>#<n>``).
        surplus = [vid for vid in services.vectors.list_ids(job.tenant, job.document_id)
                   if vid[len(job.document_id):len(job.document_id) + 1] in (".", "#")
                   and vid not in current]
        if surplus:
            services.vectors.delete_ids(job.tenant, surplus)
        _drop_previous_content(services, job, document.chunks_key)
    moved = services.jobs.transition(job.job_id, JobStatus.INDEXED, JobStatus.DONE, {})
    return moved or services.jobs.get(job.job_id)


def _drop_previous_content(services: Services, job: IngestionJob,
                           previous_chunks_key: str | None) -> None:
    """The previous version's content, chunks and embeddings, unless a live document (this
    one included) still has that content."""
    previous_sha = derived_sha(previous_chunks_key) if previous_chunks_key else None
    if previous_chunks_key is None or previous_sha is None or previous_sha == job.sha256:
        return
    if services.documents.count_by_sha(job.tenant, previous_sha) > 0:
        return
    for key in (content_key(job.tenant, previous_sha), previous_chunks_key,
                artifacts.embeddings_key(previous_chunks_key, services.embedder.model_name)):
        services.objects.delete_file(key)


def _required(value: T | None, what: str) -> T:
    if value is None:
        raise PermanentError(f"the job has no {what}: an earlier stage did not finish")
    return value


STAGE_FUNCTIONS = {
    Stage.STORE: store,
    Stage.RECORD: record,
    Stage.EXTRACT: extract,
    Stage.EMBED: embed,
    Stage.INDEX: index,
}
