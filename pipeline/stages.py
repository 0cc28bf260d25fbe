"""The five stages, one function each: store, record, extract, embed, index.

Each takes a job id (and, from ``pipeline.attempts``, the job as the attempt's count read
it: no second read), does its work only if the job waits for it (see ``run_stage``), writes
large results to the object store (claim check) and moves the job on by compare-and-set.
"""

import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import numpy as np

from adapters import metering
from domain.chunking import chunk_document
from domain.documents import (
    VectorRecord,
    chunk_id,
    content_key,
    sanitize_filename,
    version_id,
)
from domain.errors import PermanentError
from domain.job import IngestionJob
from domain.keywords import grounded
from domain.metadata import MetadataValue
from domain.status import FORWARD_ORDER, JobStatus, Stage, rank
from domain.uploads import check_size
from pipeline import artifacts, versions
from pipeline.bootstrap import Services
from pipeline.dedupe import (
    chunk_sizes,
    current_chunks_key,
    reusable_version,
    reused_fields,
)
from pipeline.sources import OBJECT_SCHEME, copy_hashing, open_source
from pipeline.stage_runner import run_stage
from pipeline.usage import usage_fields

#: Keyword extraction reads at most this much text; enough for the keywords of a document.
KEYWORD_TEXT_LIMIT = 200_000
UPSERT_BATCH = 200
T = TypeVar("T")


def store(services: Services, job_id: str, known: IngestionJob | None = None
         ) -> IngestionJob:
    """Copy the upload into the object store under its content-addressed key, after claiming
    the document for this job (``pipeline.versions.claim``)."""
    job = known or services.jobs.get(job_id)
    if _is_obsolete(services, job):
        return _finish_obsolete(services, job)

    def work(job: IngestionJob) -> Mapping[str, object]:
        limit = services.settings.max_upload_bytes
        check_size(job.size, limit)
        services.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with (
            open_source(job.source_uri, services.objects, services.urls,
                        services.buckets) as source,
            tempfile.NamedTemporaryFile(prefix="upload-", dir=services.settings.data_dir) as tmp,
        ):
            sha256, size = copy_hashing(source, tmp, limit)
            check_size(size, limit, complete=True)
            if not versions.claim(services, job, sha256):
                return {"sha256": sha256, "size": size}  # obsolete: finished below
            key = content_key(job.tenant, sha256)
            stored = 0
            if services.objects.head(key) is None:
                metadata = {"source_name": sanitize_filename(job.source_name), "sha256": sha256}
                stored = services.objects.upload_file(key, Path(tmp.name), metadata).size
        return {"sha256": sha256, "size": size, "object_key": key,
                **usage_fields(bytes_stored=stored)}

    job = run_stage(services, Stage.STORE, job, work)
    if job.object_key is not None and job.source_uri.startswith(OBJECT_SCHEME):
        # The producer's staged copy is no longer needed once the content key is recorded.
        services.objects.delete_file(job.source_uri.removeprefix(OBJECT_SCHEME))
    if job.status is JobStatus.STORED and _is_obsolete(services, job):
        return _finish_obsolete(services, job)
    return _reuse_current(services, job)


def _is_obsolete(services: Services, job: IngestionJob) -> bool:
    return not job.status.is_terminal and versions.obsolete(services, job)


def _finish_obsolete(services: Services, job: IngestionJob) -> IngestionJob:
    """A job that can no longer become current (a newer version is served, or the document
    was deleted after the job began): discard its work and finish it, changing nothing."""
    versions.discard(services, job)
    if job.object_key is None and job.source_uri.startswith(OBJECT_SCHEME):
        services.objects.delete_file(job.source_uri.removeprefix(OBJECT_SCHEME))
    return _step_to_done(services, job, {})


def _step_to_done(services: Services, job: IngestionJob,
                  fields: Mapping[JobStatus, Mapping[str, object]]) -> IngestionJob:
    """Move the job forward one compare-and-set at a time to done, setting ``fields[new]`` on
    the move to ``new``; a racing run that moved it first stops this one."""
    while not job.status.is_terminal:
        new = FORWARD_ORDER[rank(job.status) + 1]
        moved = services.jobs.transition(job.job_id, job.status, new, fields.get(new, {}))
        if moved is None:
            return services.jobs.get(job.job_id)
        job = moved
    return job


def _reuse_current(services: Services, job: IngestionJob) -> IngestionJob:
    """Identical content, already the document's current version (``reusable_version``): the
    job is done, with nothing parsed, embedded or upserted, and gives up its claim. Each step
    is still a compare-and-set, so a racing run changes nothing; the later stages' tasks find
    the job done and return."""
    if job.status is not JobStatus.STORED or job.sha256 is None:
        return job
    document = reusable_version(services, job.tenant, job.document_id, job.sha256, job.job_id,
                                metadata=job.metadata)
    if document is None:
        return job
    fields = reused_fields(services, document)
    job = _step_to_done(services, job, {
        JobStatus.EXTRACTED: {k: fields[k] for k in
                              ("chunks_key", "chunk_count", "keywords", "content_type")},
        JobStatus.EMBEDDED: {"embeddings_key": fields["embeddings_key"]},
    })
    versions.drop_claim(services, job, content_unused=False)  # its content is served
    return job


def record(services: Services, job_id: str, known: IngestionJob | None = None
          ) -> IngestionJob:
    """Make sure the document records this job's claim (the store stage made it; this is
    where a job stored before claims existed gets one)."""
    job = known or services.jobs.get(job_id)
    if _is_obsolete(services, job):
        return _finish_obsolete(services, job)

    def work(job: IngestionJob) -> Mapping[str, object]:
        _required(job.object_key, "key")
        versions.claim(services, job, _required(job.sha256, "sha256"))
        return {}

    job = run_stage(services, Stage.RECORD, job, work)
    if job.status is JobStatus.RECORDED and _is_obsolete(services, job):
        return _finish_obsolete(services, job)
    return job


def extract(services: Services, job_id: str, known: IngestionJob | None = None
           ) -> IngestionJob:
    """Parse, chunk (in the embedder's tokens) and pick keywords, stored once per content,
    chunker and tokenizer: content already chunked this way is not parsed again."""
    job = known or services.jobs.get(job_id)
    if _is_obsolete(services, job):
        return _finish_obsolete(services, job)

    def work(job: IngestionJob) -> Mapping[str, object]:
        sha256, object_key = _required(job.sha256, "sha256"), _required(job.object_key, "key")
        key = current_chunks_key(services, job.tenant, sha256)
        if services.objects.head(key) is not None:
            chunk_set = artifacts.load_chunks(services.objects, key)
        else:
            chunk_set = derive_chunks(services, job.document_id, object_key, key)
        return {"chunks_key": key, "chunk_count": len(chunk_set.chunks),
                "keywords": chunk_set.keywords, "content_type": chunk_set.content_type}

    return run_stage(services, Stage.EXTRACT, job, work)


def derive_chunks(services: Services, document_id: str, object_key: str,
                  key: str) -> artifacts.ChunkSet:
    """Parse the content at ``object_key``, chunk it and pick keywords; stored at ``key``
    (the bytes stored and the keyword calls are recorded: ``adapters.metering``)."""
    size, overlap = chunk_sizes(services)
    parsed = services.parser.parse(services.objects.get_bytes(object_key))
    chunks = chunk_document(document_id, parsed, services.embedder.count_tokens,
                            max_tokens=size, overlap_tokens=overlap)
    sample = parsed.text[:KEYWORD_TEXT_LIMIT]
    keywords = grounded(services.keywords.generate_keywords(
        sample, services.settings.chunking.max_keywords), sample)
    chunk_set = artifacts.ChunkSet(
        content_type=parsed.content_type, keywords=keywords,
        chunks=[artifacts.ChunkText(c.index, c.text, c.start, c.end, c.page, c.section)
                for c in chunks])
    metering.record(bytes_stored=artifacts.save_chunks(services.objects, key, chunk_set))
    return chunk_set


def embed(services: Services, job_id: str, known: IngestionJob | None = None
         ) -> IngestionJob:
    """Embed every chunk, stored once per content, chunking and model."""
    job = known or services.jobs.get(job_id)
    if _is_obsolete(services, job):
        return _finish_obsolete(services, job)

    def work(job: IngestionJob) -> Mapping[str, object]:
        chunks_key = _required(job.chunks_key, "chunks")
        key = artifacts.embeddings_key(chunks_key, services.embedder.model_name)
        if services.objects.head(key) is None:
            derive_embeddings(services, chunks_key, key)
        return {"embeddings_key": key}

    return run_stage(services, Stage.EMBED, job, work)


def derive_embeddings(services: Services, chunks_key: str, key: str) -> None:
    """Embed every chunk stored at ``chunks_key``; the matrix is stored at ``key`` (the bytes
    stored and the embedder calls are recorded: ``adapters.metering``)."""
    chunk_set = artifacts.load_chunks(services.objects, chunks_key)
    texts = [c.text for c in chunk_set.chunks]
    batch = services.settings.embed_batch_size
    vectors: list[list[float]] = []
    for first in range(0, len(texts), batch):
        vectors.extend(services.embedder.generate_embeddings(texts[first:first + batch]))
    matrix = np.asarray(vectors, dtype=np.float32).reshape(
        len(texts), services.embedder.dimension)
    metering.record(bytes_stored=artifacts.save_embeddings(services.objects, key, matrix))


def index(services: Services, job_id: str, known: IngestionJob | None = None
         ) -> IngestionJob:
    """Upsert this version's vectors beside the served version's (embedded -> indexed), then
    settle (``pipeline.versions.settle``): make this version current, unless a newer one is
    served or the document was deleted since the job began, in which case its vectors and
    content go again (indexed -> done). A run that upserted always settles, also when a
    duplicate run moved the job on meanwhile: its late upsert must not linger."""
    job = known or services.jobs.get(job_id)
    if _is_obsolete(services, job):
        return _finish_obsolete(services, job)
    upserted = False

    def work(job: IngestionJob) -> Mapping[str, object]:
        nonlocal upserted
        written = _upsert(services, job)
        upserted = True
        return usage_fields(vectors_written=written)

    job = run_stage(services, Stage.INDEX, job, work)
    if job.status is JobStatus.INDEXED or (upserted and job.status is JobStatus.DONE):
        versions.settle(services, job)
    if job.status is JobStatus.INDEXED:
        moved = services.jobs.transition(job.job_id, JobStatus.INDEXED, JobStatus.DONE, {})
        job = moved or services.jobs.get(job.job_id)
    return job


def _upsert(services: Services, job: IngestionJob) -> int:
    """Upsert this job's vectors, ids ``<document id>.<version of this job>#<n>``; returns
    how many."""
    chunks_key = _required(job.chunks_key, "chunks")
    chunk_set = artifacts.load_chunks(services.objects, chunks_key)
    matrix = artifacts.load_embeddings(services.objects, _required(job.embeddings_key, "vectors"))
    if matrix.shape != (len(chunk_set.chunks), services.embedder.dimension):
        raise PermanentError(
            f"stored embeddings have shape {matrix.shape}, expected "
            f"({len(chunk_set.chunks)}, {services.embedder.dimension})")
    records = version_records(job.document_id, version_id(job.document_id, job.job_id),
                              job.source, job.sha256 or "", job.created_at, chunks_key,
                              chunk_set, matrix, job.metadata)
    for first in range(0, len(records), UPSERT_BATCH):
        services.vectors.upsert_vector(job.tenant, records[first:first + UPSERT_BATCH])
    return len(records)


def version_records(document_id: str, version: str, source: str, sha256: str,
                    created_at: datetime, chunks_key: str, chunk_set: artifacts.ChunkSet,
                    matrix: np.ndarray, metadata: Mapping[str, MetadataValue] | None = None
                    ) -> list[VectorRecord]:
    """The vectors of one version (ids ``<version>#<n>``) from its stored chunks and
    embeddings, with the version's custom ``metadata``: what the index stage upserts, and
    what a re-index copies."""
    ingested_at = int(created_at.timestamp())
    return [
        VectorRecord(
            id=chunk_id(version, chunk.index),
            values=matrix[chunk.index].tolist(),
            metadata={  # custom metadata first: the system's own fields always win
                **(metadata or {}),
                "document_id": document_id, "chunk_index": chunk.index,
                "source": source, "sha256": sha256,
                "chunks_key": chunks_key, "content_type": chunk_set.content_type,
                "keywords": chunk_set.keywords, "ingested_at": ingested_at,
            },
            text=chunk.text,
        )
        for chunk in chunk_set.chunks
    ]


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
