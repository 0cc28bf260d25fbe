"""Dedupe: when an upload's content is already its document's current, searchable version."""

from collections.abc import Mapping

from domain.documents import Document
from domain.errors import NotFoundError
from domain.status import JobStatus
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
                     job_id: str | None = None) -> Document | None:
    """The document, if ``sha256`` is already its current version, chunked and embedded as
    today's settings would, by a job (other than ``job_id``) that is done: then nothing needs
    parsing, embedding or upserting. None when any of that is not so (including another
    version on its way: that must take the long road)."""
    document = services.documents.get(tenant, document_id)
    if (document is None or document.deleted or document.sha256 != sha256
            or document.chunks_key is None or document.job_id == job_id):
        return None
    if document.chunks_key != current_chunks_key(services, tenant, sha256):
        return None
    try:
        if services.jobs.get(document.job_id).status is not JobStatus.DONE:
            return None
    except NotFoundError:
        pass
    return document


def reused_fields(services: Services, document: Document) -> Mapping[str, object]:
    """What a job that reuses ``document``'s current version records about it."""
    chunks_key = document.chunks_key or ""
    return {
        "chunks_key": chunks_key, "chunk_count": document.chunk_count,
        "keywords": document.keywords, "content_type": document.content_type,
        "embeddings_key": artifacts.embeddings_key(chunks_key, services.embedder.model_name),
    }
