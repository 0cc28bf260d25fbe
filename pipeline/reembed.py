"""Re-embed a tenant's served documents with the configured model, from their stored chunks.

Changing the local model (``local_model``) gives an empty index: each model's vectors live
apart (``adapters.factory.vector_index``). ``reembed`` fills it without parsing anything
again: for every document whose served version is live it reads the version's stored
chunks, embeds them with today's embedder (or reuses that model's stored embeddings of the
same chunks) and upserts them, text included, under the served version's own vector ids,
so search answers from the new index at once. Idempotent: running it twice upserts the
same ids again. A document that gets a new version or is deleted while it runs has the
vectors just upserted for its old version removed again; the new version's own job indexes
it with the new model.

Chunks cut for another model may be longer than this one reads: they are counted
(``ReembedReport.cut``) and embedded as far as the model reads.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from adapters.ports import JobPages
from adapters.routing.vector_index import RoutedVectorIndex
from domain.documents import Document
from domain.errors import ConfigurationError, NotFoundError, PermanentError
from domain.job import IngestionJob
from domain.status import JobStatus
from pipeline import artifacts
from pipeline.bootstrap import Services
from pipeline.stages import UPSERT_BATCH, version_records

PAGE = 200


@dataclass
class ReembedReport:
    documents: int = 0
    chunks: int = 0
    embedded: int = 0  # documents whose chunks were embedded now
    reused: int = 0  # documents whose embeddings by this model were already stored
    cut: int = 0  # chunks longer than the model reads
    superseded: int = 0  # documents replaced or deleted meanwhile
    skipped: dict[str, str] = field(default_factory=dict)  # document id -> reason


def served_documents(services: Services, tenant: str) -> Iterator[Document]:
    """Each live document of the tenant with a served version, once, newest job first."""
    seen: set[str] = set()
    for job in _done_jobs(services, tenant):
        if job.document_id in seen:
            continue
        seen.add(job.document_id)
        document = services.documents.get(tenant, job.document_id)
        if document is not None and not document.deleted and document.served is not None:
            yield document


def _done_jobs(services: Services, tenant: str) -> Iterator[IngestionJob]:
    """The tenant's done jobs, page by page where the repository pages."""
    jobs = services.jobs
    if not isinstance(jobs, JobPages):
        yield from jobs.list_jobs(tenant=tenant, status=JobStatus.DONE, limit=10**9)
        return
    after = None
    while True:
        page = jobs.list_jobs_page(tenant=tenant, status=JobStatus.DONE, limit=PAGE,
                                   after=after)
        yield from page
        if len(page) < PAGE:
            return
        after = (page[-1].created_at, page[-1].job_id)


def reembed(services: Services, tenant: str) -> ReembedReport:
    index = services.vectors
    if isinstance(index, RoutedVectorIndex) and index.route(tenant) is not None:
        raise ConfigurationError(
            f"tenant {tenant} is served by a re-index target, not the settings' index of "
            f"{services.embedder.model_name}: re-embedding would mix two models' vectors "
            "there; re-index the tenant into an index of this model instead")
    report = ReembedReport()
    for document in served_documents(services, tenant):
        try:
            _reembed_one(services, document, report)
        except (NotFoundError, PermanentError) as exc:
            report.skipped[document.document_id] = str(exc)
    return report


def _reembed_one(services: Services, document: Document, report: ReembedReport) -> None:
    served = document.served
    assert served is not None
    embedder = services.embedder
    chunk_set = artifacts.load_chunks(services.objects, served.chunks_key)
    key = artifacts.embeddings_key(served.chunks_key, embedder.model_name)
    texts = [chunk.text for chunk in chunk_set.chunks]
    if services.objects.head(key) is None:
        report.cut += sum(embedder.count_tokens(t) > embedder.max_input_tokens for t in texts)
        batch = services.settings.embed_batch_size
        vectors: list[list[float]] = []
        for first in range(0, len(texts), batch):
            vectors.extend(embedder.generate_embeddings(texts[first:first + batch]))
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(texts), embedder.dimension)
        artifacts.save_embeddings(services.objects, key, matrix)
        report.embedded += 1
    else:
        matrix = artifacts.load_embeddings(services.objects, key)
        report.reused += 1
    if matrix.shape != (len(texts), embedder.dimension):
        raise PermanentError(f"stored embeddings {key} have shape {matrix.shape}, expected "
                             f"({len(texts)}, {embedder.dimension})")
    records = version_records(document.document_id, served.vector_version, document.source,
                              served.sha256, served.created_at, served.chunks_key, chunk_set,
                              matrix, served.metadata)
    for first in range(0, len(records), UPSERT_BATCH):
        services.vectors.upsert_vector(document.tenant, records[first:first + UPSERT_BATCH])
    report.documents += 1
    report.chunks += len(records)
    now = services.documents.get(document.tenant, document.document_id)
    if now is None or now.deleted or now.served is None \
            or now.served.vector_version != served.vector_version:
        services.vectors.delete_ids(document.tenant, [r.id for r in records])
        report.superseded += 1
