"""Factory functions: build each port's adapter from settings (the seed's db_repository.py).

Adapter modules are imported inside the functions, so a process only needs the packages of
the backends it is configured for.
"""

from typing import TYPE_CHECKING, Any

from adapters.ports import (
    DocumentRepository,
    Embedder,
    JobRepository,
    KeywordExtractor,
    ObjectStore,
    StageDispatcher,
    VectorIndex,
)
from domain.errors import ConfigurationError
from domain.status import Stage

if TYPE_CHECKING:
    from pipeline.settings import Settings


def object_store(settings: "Settings") -> ObjectStore:
    if settings.object_store == "filesystem":
        from adapters.filesystem import FilesystemObjectStore

        return FilesystemObjectStore(settings.objects_dir)
    raise ConfigurationError(f"CONVERSA_OBJECT_STORE={settings.object_store} is not supported")


def _mongo_options(settings: "Settings") -> dict[str, Any]:
    return {
        "url": settings.require_mongo_url(),
        "database": settings.mongo_database,
        "timeout_ms": settings.mongo_timeout_ms,
        "write_concern_w": settings.mongo_write_concern,
        "journal": settings.mongo_journal,
    }


def job_repository(settings: "Settings") -> JobRepository:
    from adapters.mongodb import MongoJobRepository

    return MongoJobRepository(**_mongo_options(settings))


def document_repository(settings: "Settings") -> DocumentRepository:
    from adapters.mongodb import MongoDocumentRepository

    return MongoDocumentRepository(**_mongo_options(settings))


def embedder(settings: "Settings") -> Embedder:
    if settings.embedder == "local":
        from adapters.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(threads=settings.onnx_threads, batch_size=settings.embed_batch_size)
    raise ConfigurationError(f"CONVERSA_EMBEDDER={settings.embedder} is not supported")


def keyword_extractor(settings: "Settings") -> KeywordExtractor:
    if settings.keywords == "local":
        from adapters.yake_keywords import YakeKeywords

        return YakeKeywords()
    raise ConfigurationError(f"CONVERSA_KEYWORDS={settings.keywords} is not supported")


def vector_index(settings: "Settings", dimension: int) -> VectorIndex:
    if settings.vector_index == "local":
        from adapters.lancedb_index import LanceDBVectorIndex

        return LanceDBVectorIndex(settings.vectors_dir, dimension)
    raise ConfigurationError(f"CONVERSA_VECTOR_INDEX={settings.vector_index} is not supported")


class NoDispatcher:
    """For processes that read and search but never start stages."""

    def dispatch(self, job_id: str, stage: Stage) -> None:
        raise ConfigurationError("this process has no broker to dispatch stages to")


def no_dispatcher() -> StageDispatcher:
    return NoDispatcher()


# The seed's factory names, kept for readers of the original backend.
def data_ingestion_repository(settings: "Settings") -> JobRepository:
    return job_repository(settings)


def s3_repository(settings: "Settings") -> ObjectStore:
    return object_store(settings)


def pinecone_repository(settings: "Settings") -> VectorIndex:
    return vector_index(settings, embedder(settings).dimension)
