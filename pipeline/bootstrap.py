"""The composition root: builds every adapter from settings unless the caller passes one."""

from dataclasses import dataclass
from typing import Any

from adapters import factory
from adapters.ports import (
    BucketSource,
    CallbackRepository,
    CallbackSender,
    DimensionChecked,
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
from pipeline.accounts import AccountServices
from pipeline.settings import Settings, load_settings, process_settings


@dataclass
class Services:
    """Everything a pipeline function may touch, wired once per process."""

    settings: Settings
    objects: ObjectStore
    jobs: JobRepository
    documents: DocumentRepository
    embedder: Embedder
    keywords: KeywordExtractor
    vectors: VectorIndex
    dispatcher: StageDispatcher
    parser: DocumentParser
    search_metrics: SearchMetrics
    in_flight: InFlightJobs
    urls: UrlFetcher
    buckets: BucketSource
    callbacks: CallbackRepository
    callback_sender: CallbackSender
    events: JobEvents
    usage_metrics: UsageMetrics
    #: Which index serves each tenant (None: no routing, ``vectors`` serves every tenant).
    indexes: IndexRegistry | None = None


def bootstrap(
    settings: Settings | None = None,
    *,
    objects: ObjectStore | None = None,
    jobs: JobRepository | None = None,
    documents: DocumentRepository | None = None,
    embedder: Embedder | None = None,
    keywords: KeywordExtractor | None = None,
    vectors: VectorIndex | None = None,
    dispatcher: StageDispatcher | None = None,
    parser: DocumentParser | None = None,
    search_metrics: SearchMetrics | None = None,
    in_flight: InFlightJobs | None = None,
    urls: UrlFetcher | None = None,
    buckets: BucketSource | None = None,
    callbacks: CallbackRepository | None = None,
    callback_sender: CallbackSender | None = None,
    events: JobEvents | None = None,
    usage_metrics: UsageMetrics | None = None,
    indexes: IndexRegistry | None = None,
) -> Services:
    """Wire the pipeline. Adapters are lazy: nothing connects until first used. The vector
    index is routed per tenant (``adapters.routing``) when ``indexes`` is given, or when the
    index and the document records both come from settings (routes live beside the records)."""
    settings = settings or load_settings()
    embedder = embedder or factory.embedder(settings)
    if indexes is None and vectors is None and documents is None:
        indexes = factory.index_registry(settings)
    index = vectors or factory.vector_index(settings, embedder.dimension,
                                            model_name=embedder.model_name)
    if indexes is not None:
        index = factory.routed_vector_index(settings, embedder.dimension, index, indexes)
    return Services(
        settings=settings,
        objects=objects or factory.object_store(settings),
        jobs=jobs or factory.job_repository(settings),
        documents=documents or factory.document_repository(settings),
        embedder=embedder,
        keywords=keywords or factory.keyword_extractor(settings),
        vectors=index,
        dispatcher=dispatcher or factory.no_dispatcher(),
        parser=parser or factory.document_parser(settings),
        search_metrics=search_metrics or factory.search_metrics(settings),
        in_flight=in_flight or factory.in_flight_jobs(settings),
        urls=urls or factory.url_fetcher(settings),
        buckets=buckets or factory.bucket_source(settings),
        callbacks=callbacks or factory.callback_repository(settings),
        callback_sender=callback_sender or factory.callback_sender(settings),
        events=events or factory.job_events(settings),
        usage_metrics=usage_metrics or factory.usage_metrics(settings),
        indexes=indexes,
    )


def bootstrap_process(settings: Settings | None = None, **adapters: Any) -> Services:
    """The services of an entry-point process (worker, CLI, API, beat): this process's
    settings, stages sent through Celery, and the embedder metered for the metrics endpoint.
    ``adapters`` replace any of them, as in ``bootstrap``."""
    settings = settings or process_settings()
    if "dispatcher" not in adapters:
        adapters["dispatcher"] = factory.stage_dispatcher()
    if "embedder" not in adapters:
        adapters["embedder"] = factory.metered_embedder(settings)
    return bootstrap(settings, **adapters)


def bootstrap_accounts(
    settings: Settings | None = None,
    *,
    users: UserRepository | None = None,
    verifications: UserVerificationRepository | None = None,
    notifier: Notifier | None = None,
    limiter: RequestLimiter | None = None,
) -> AccountServices:
    """Wire the account ports (the API's); adapters are lazy, nothing connects until used."""
    settings = settings or process_settings()
    return AccountServices(
        settings=settings,
        users=users or factory.user_repository(settings),
        verifications=verifications or factory.user_verification_repository(settings),
        notifier=notifier or factory.notifier(settings),
        limiter=limiter or factory.request_limiter(settings),
    )


def check_vector_dimension(settings: Settings) -> None:
    """ConfigurationError, naming both dimensions, when the configured vector index stores
    vectors of another dimension than the configured embedder makes (checked when a worker
    starts). Builds short-lived adapters; the embedder's model is not loaded."""
    embedder = factory.embedder(settings)
    index = factory.vector_index(settings, embedder.dimension, model_name=embedder.model_name)
    if isinstance(index, DimensionChecked):
        index.check_dimension()
