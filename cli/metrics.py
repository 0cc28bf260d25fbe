"""`conversa metrics`: a Prometheus endpoint serving ``/metrics`` for the whole pipeline.

Each scrape reads the truth where it lives: queue lengths from the broker, jobs per status
and the oldest unfinished job from MongoDB, and what the workers recorded in Redis
(workers/telemetry.py): stage durations, retries and failures by stage and error type,
embedder requests and tokens, and what each tenant's jobs cost (``conversa_tenant_*``,
unless ``CONVERSA_USAGE__TENANT_METRICS`` is off). Nothing here is per process, so one
exporter serves any number of workers. A source that cannot be read is reported as
``conversa_source_up{source} 0``.
"""

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import amqp.exceptions
import kombu.exceptions
import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from adapters.celery.broker_counts import queue_depths
from adapters.redis.queues import broker_client
from adapters.redis.usage_metrics import SEPARATOR as USAGE_SEPARATOR
from adapters.redis.usage_metrics import TENANT_USAGE_KEY
from domain.status import STAGES
from pipeline.check import KINDS as CHECK_KINDS
from pipeline.settings import Settings
from workers import telemetry

log = logging.getLogger(__name__)

#: What an unreachable broker raises through kombu (RabbitMQ) besides redis-py's errors.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    OSError, kombu.exceptions.OperationalError, amqp.exceptions.AMQPError)
#: The same, and redis-py's own errors.
_UNREADABLE_BROKER: tuple[type[BaseException], ...] = (redis.RedisError, *BROKER_ERRORS)


class PipelineCollector(Collector):
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: redis.Redis | None = None
        self._stats: Any = None

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = broker_client(self._settings.require_redis_url())
        return self._client

    def _job_stats(self) -> Any:
        if self._stats is None:
            from adapters.mongodb.job_stats import MongoJobStats

            s = self._settings
            self._stats = MongoJobStats(s.require_mongo_url(), s.mongo_database,
                                        s.mongo_timeout_ms)
        return self._stats

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("conversa_source_up",
                               "1 if the exporter could read the source on this scrape",
                               labels=["source"])
        try:
            yield self._queue_metrics()
            up.add_metric(["broker"], 1)
        except _UNREADABLE_BROKER as exc:
            log.warning("metrics: broker unreadable: %s", exc)
            up.add_metric(["broker"], 0)
        try:
            yield from self._worker_metrics()
            up.add_metric(["redis"], 1)
        except redis.RedisError as exc:
            log.warning("metrics: Redis unreadable: %s", exc)
            up.add_metric(["redis"], 0)
        try:
            yield from self._job_metrics()
            up.add_metric(["mongodb"], 1)
        except Exception as exc:  # any database failure is a 0, never a failed scrape
            log.warning("metrics: MongoDB unreadable: %s", exc)
            up.add_metric(["mongodb"], 0)
        yield up

    def _queue_metrics(self) -> Metric:
        """From the broker's own counts (Redis lists, or RabbitMQ's passive declare, which has
        no unacknowledged count: that state is left out there)."""
        queue = GaugeMetricFamily(
            "conversa_queue_messages",
            "Messages per queue: waiting, or taken by a worker and not yet acknowledged",
            labels=["queue", "stage", "state"])
        for depth in queue_depths(self._settings.require_broker_url()):
            queue.add_metric([depth.queue, depth.stage or "", "waiting"], depth.waiting)
            if depth.unacked is not None:
                queue.add_metric([depth.queue, depth.stage or "", "unacked"], depth.unacked)
        return queue

    def _worker_metrics(self) -> Iterator[Metric]:
        """What the workers recorded in Redis (workers/telemetry.py)."""
        client = self._redis()
        with client.pipeline(transaction=False) as pipe:
            for key in (telemetry.DURATION_KEY, telemetry.RETRIES_KEY, telemetry.FAILURES_KEY,
                        telemetry.EMBEDDER_KEY, telemetry.SEARCH_SKIPPED_KEY):
                pipe.hgetall(key)
            durations, retries, failures, embedder, skipped = (
                {k.decode(): v.decode() for k, v in raw.items()} for raw in pipe.execute())
        yield _histogram(durations)
        for name, doc, counts in (
                ("conversa_stage_retries", "Stage runs retried, by stage and error type",
                 retries),
                ("conversa_stage_failures", "Stage runs that failed their job, by stage and "
                 "error type", failures)):
            family = CounterMetricFamily(name, doc, labels=["stage", "error_type"])
            for field, value in sorted(counts.items()):
                stage, _, error_type = field.partition(telemetry.SEPARATOR)
                family.add_metric([stage, error_type], float(value))
            yield family
        yield CounterMetricFamily("conversa_embedder_requests",
                                  "Calls to the embedder (one batch of texts each)",
                                  value=float(embedder.get("requests", 0)))
        yield CounterMetricFamily("conversa_embedder_tokens",
                                  "Tokens sent to the embedder, in its own tokenizer",
                                  value=float(embedder.get("tokens", 0)))
        search_skipped = CounterMetricFamily(
            "conversa_search_skipped_candidates",
            "Search candidates skipped because their chunks were missing or unreadable",
            labels=["reason"])
        for reason, value in sorted(skipped.items()):
            search_skipped.add_metric([reason], float(value))
        yield search_skipped
        yield from _check_families(client.hgetall(telemetry.CHECK_KEY))
        if self._settings.usage.tenant_metrics:
            yield from _tenant_usage(client.hgetall(TENANT_USAGE_KEY))

    def _job_metrics(self) -> Iterator[Metric]:
        stats = self._job_stats()
        jobs = GaugeMetricFamily("conversa_jobs", "Jobs per status, every tenant together",
                                 labels=["status"])
        for status, count in stats.count_by_status().items():
            jobs.add_metric([status.value], count)
        yield jobs
        oldest = stats.oldest_active_created_at()
        yield GaugeMetricFamily(
            "conversa_oldest_active_job_age_seconds",
            "Age of the oldest job not yet done or failed (0 when there is none)",
            value=0.0 if oldest is None else max(0.0, time.time() - oldest.timestamp()))
        if self._settings.usage.tenant_metrics:
            per_tenant = GaugeMetricFamily("conversa_tenant_jobs", "Jobs per tenant and status",
                                           labels=["tenant", "status"])
            for (tenant, status), count in sorted(
                    stats.count_by_tenant_and_status().items()):
                per_tenant.add_metric([tenant, status.value], count)
            yield per_tenant


#: The per-tenant variant of the usage figures (``CONVERSA_USAGE__TENANT_METRICS`` turns it
#: off: one series per tenant and figure).
TENANT_USAGE_METRICS = {
    "embed_requests": ("conversa_tenant_embedder_requests", "Embedder requests of the "
                       "tenant's jobs"),
    "embed_tokens": ("conversa_tenant_embedder_tokens", "Embedder tokens of the tenant's "
                     "jobs, as the embedder counts them"),
    "keyword_requests": ("conversa_tenant_keyword_requests", "Keyword extractor requests of "
                         "the tenant's jobs"),
    "keyword_tokens": ("conversa_tenant_keyword_tokens", "Keyword model tokens of the "
                       "tenant's jobs"),
    "bytes_stored": ("conversa_tenant_stored_bytes", "Bytes the tenant's jobs stored"),
    "vectors_written": ("conversa_tenant_vectors_written", "Vectors the tenant's jobs wrote"),
}


def _tenant_usage(raw: Mapping[bytes | str, bytes | str]) -> Iterator[Metric]:
    families = {name: CounterMetricFamily(metric, doc, labels=["tenant"])
                for name, (metric, doc) in TENANT_USAGE_METRICS.items()}
    fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    for field, value in sorted(fields.items()):
        tenant, _, name = field.partition(USAGE_SEPARATOR)
        if name in families:
            families[name].add_metric([tenant], float(value))
    yield from families.values()


def _histogram(fields: dict[str, str]) -> HistogramMetricFamily:
    family = HistogramMetricFamily("conversa_stage_duration_seconds",
                                   "Time a stage task took to succeed, by stage",
                                   labels=["stage"])
    for stage in STAGES:
        name = stage.value
        count = int(fields.get(telemetry.bucket_field(name, "count"), 0))
        cumulative, buckets = 0, []
        for upper in (*(str(b) for b in telemetry.DURATION_BUCKETS), "+Inf"):
            cumulative += int(fields.get(telemetry.bucket_field(name, upper), 0))
            buckets.append((upper, float(cumulative)))
        buckets[-1] = ("+Inf", float(max(count, cumulative)))
        family.add_metric([name], buckets, float(fields.get(
            telemetry.bucket_field(name, "sum"), 0.0)))
    return family


def _check_families(raw: Mapping[bytes | str, bytes | str]) -> Iterator[Metric]:
    """What the last scheduled check found (workers/maintenance.py), by kind."""
    fields = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}
    problems = GaugeMetricFamily(
        "conversa_check_problems", "What the last scheduled `conversa check` found, by kind, "
        "every tenant together (0 everywhere: clean)", labels=["kind"])
    for kind in CHECK_KINDS:
        problems.add_metric([kind], fields.get(kind, 0.0))
    yield problems
    yield GaugeMetricFamily("conversa_check_last_run_timestamp_seconds",
                            "When the last scheduled check ended (0: never)",
                            value=fields.get("last_run", 0.0))


def registry_for(settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(settings))
    return registry


def serve(settings: Settings, address: str, port: int) -> None:
    """Serve ``/metrics`` until the process is stopped."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=address, registry=registry_for(settings))
    stop = threading.Event()
    try:
        stop.wait()
    finally:
        server.shutdown()
        thread.join(timeout=5)

