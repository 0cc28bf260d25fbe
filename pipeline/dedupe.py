"""Dedupe: when an upload's content is already its document's current, searchable version.

One rule (``reusable_version``), applied at two points that must both stay: the producer
(``pipeline.producer.enqueue``) when it hashed the bytes itself (a local file), so an
unchanged file is recorded done without going on the broker; and the store stage
(``pipeline.stages``), for what only a worker hashes (API uploads, bucket objects, URLs) and
for content that became current while the job waited in the queue. The producer records the
job done in one write; the stage moves a job that exists already, one compare-and-set a step.
"""

from collections.abc import Mapping

from domain.documents import Document
from domain.errors import NotFoundError
from domain.status import JobStatus
from domain.versions import holds
from pipeline import artifacts
from pipeline.bootstrap import Services


def chunk_sizes(services: Services) -> tuple[int, int]:
    """(chunk size, overlap) in the embedder's tokens: never above what it reads."""
    cfg = services.settings.chunking
    size = min(cfg.size_tokens, services.embedder.max_input_tokens)
    return size, min(cfg.overlap_tokens, size // 2)


def current_chunks_key(services: Services, tenant: str, sha256: str) -> str:
    """Where today's chunking of this content, for today's embedder, is stored."""
    size, overlap = chunk_sizes(services)
    return artifacts.chunks_key(tenant, sha256, services.embedder.model_name, size, overlap)


def reusable_version(services: Services, tenant: str, document_id: str, sha256: str,
                     job_id: str | None = None, *,
                     metadata: Mapping[str, object] | None = None) -> Document | None:
    """The document, if ``sha256`` with custom ``metadata`` is already its served version,
    chunked and embedded as today's settings would, by a job (other than ``job_id``) that is
    done: then nothing needs parsing, embedding or upserting. Other metadata takes the long
    road, which reuses the stored chunks and embeddings and upserts the vectors with the new
    metadata. None when any of that is not so, including another
    version on its way (a claim that still holds): that must take the long road, or it would
    end done while the other version becomes current after it."""
    return reusable(services, services.documents.get(tenant, document_id), sha256, job_id,
                    metadata=metadata)


def reusable(services: Services, document: Document | None, sha256: str,
             job_id: str | None = None, *,
             metadata: Mapping[str, object] | None = None) -> Document | None:
    """``reusable_version`` on the document's record as just read."""
    if document is None or document.deleted or document.served is None:
        return None
    served = document.served
    if served.sha256 != sha256 or served.job_id == job_id:
        return None
    if served.metadata != dict(metadata or {}):
        return None
    if served.chunks_key != current_chunks_key(services, document.tenant, sha256):
        return None
    if any(claim.job_id != job_id and holds(document, claim, _status(services, claim.job_id))
           for claim in document.claims):
        return None
    if _status(services, served.job_id) not in (JobStatus.DONE, None):
        return None
    return document


def _status(services: Services, job_id: str) -> JobStatus | None:
    try:
        return services.jobs.get(job_id).status
    except NotFoundError:
        return None


def reused_fields(services: Services, document: Document) -> Mapping[str, object]:
    """What a job that reuses ``document``'s served version records about it."""
    assert document.served is not None
    served = document.served
    return {
        "chunks_key": served.chunks_key, "chunk_count": served.chunk_count,
        "keywords": served.keywords, "content_type": served.content_type,
        "embeddings_key": served.embeddings_key
        or artifacts.embeddings_key(served.chunks_key, services.embedder.model_name),
    }
