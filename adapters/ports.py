"""The ports: small Protocols whose docstrings are the contract every adapter keeps.

Every method may raise :class:`domain.errors.TransientError` (try again later) or
:class:`domain.errors.PermanentError` (do not); adapters translate their SDK's exceptions into
these at the boundary and let nothing else escape. Everything is scoped to one tenant: object
keys start with the tenant, records carry it, vectors live in the tenant's namespace.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from domain.callbacks import TenantCallback
from domain.documents import Document, VectorHit, VectorRecord
from domain.filters import MetadataFilter as MetadataFilter  # see domain.filters
from domain.indexes import IndexRoute, IndexTarget, ReindexRun
from domain.job import IngestionJob, StageError
from domain.parsing import ParsedDocument
from domain.status import JobStatus, Stage
from domain.usage import Usage, UsageDay
from domain.users import ApiKey, PendingVerification, User, VerificationCode


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    metadata: Mapping[str, str]


@runtime_checkable
class ObjectStore(Protocol):
    """Binary objects under keys (``<tenant>/...``), written whole or not at all.

    - ``upload_file``/``put_bytes`` are idempotent: writing the same key again replaces it,
      and a reader never sees a partly written object.
    - ``open``/``get_bytes`` raise NotFoundError for a missing key.
    - ``delete_file`` of a missing key is not an error.
    - ``head`` returns None for a missing key.
    """

    def upload_file(self, key: str, path: Path, metadata: Mapping[str, str]) -> ObjectInfo: ...

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str]) -> ObjectInfo: ...

    def open(self, key: str) -> BinaryIO: ...

    def get_bytes(self, key: str) -> bytes: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def delete_file(self, key: str) -> None: ...


@runtime_checkable
class JobRepository(Protocol):
    """Ingestion job records, the source of truth for where each upload is.

    - ``create`` is create-or-get by ``job_id``: a second call returns the stored record
      unchanged.
    - ``transition`` is compare-and-set: it moves the job from ``expected`` to ``new`` (which
      must be a legal move, see ``domain.status.can_transition``) and sets ``fields``, or
      returns None when the job is not in ``expected`` (someone else moved it first) or does
      not exist. ``fields`` are checked by ``domain.job.check_transition_fields``: identity,
      status and clocks are the repository's, and a wrong field is PermanentError. The job
      it returns (as ``fail``'s and ``redrive``'s) is read after the move, so it may also
      show a change another writer made since.
    - ``fail`` moves any non-terminal job to failed with the error; returns None if the job
      is already terminal.
    - ``redrive`` moves a failed job back to ``status`` (a stage's input status, see
      ``domain.status.is_redrive_target``; anything else is PermanentError) and clears the
      error; None unless it was failed.
    - ``count_attempt`` adds one to the stage's attempt counter and returns the new count; it
      counts as activity (``updated_at``). ``begin_attempt`` counts the same way and returns
      the job read after it (what a stage starts from, in the same round trips), whose count
      may include racing attempts.
    - ``get``, ``count_attempt`` and ``begin_attempt`` raise NotFoundError for a missing
      job; ``list_jobs`` returns newest first, nothing for a limit below 1.
    - ``get_many`` reads many jobs in few round trips (pages of ids, for thousands): the
      jobs found, in the order of ``job_ids``, each once; missing ids are left out.
    """

    def create(self, job: IngestionJob) -> IngestionJob: ...

    def get(self, job_id: str) -> IngestionJob: ...

    def get_many(self, job_ids: Sequence[str]) -> list[IngestionJob]: ...

    def transition(
        self, job_id: str, expected: JobStatus, new: JobStatus, fields: Mapping[str, object]
    ) -> IngestionJob | None: ...

    def fail(self, job_id: str, error: StageError) -> IngestionJob | None: ...

    def redrive(self, job_id: str, status: JobStatus) -> IngestionJob | None: ...

    def count_attempt(self, job_id: str, stage: str) -> int: ...

    def begin_attempt(self, job_id: str, stage: str) -> IngestionJob: ...

    def list_jobs(
        self, *, tenant: str | None = None, status: JobStatus | None = None, limit: int = 100
    ) -> list[IngestionJob]: ...

    def list_stale(self, *, older_than_seconds: float, limit: int = 500) -> list[IngestionJob]:
        """Non-terminal jobs not updated for ``older_than_seconds``, oldest first."""
        ...

    def count_in_flight(self, tenant: str, at_most: int) -> int:
        """How many of the tenant's jobs are not terminal, counting no further than
        ``at_most``; its cost follows the jobs in flight, not all the tenant's jobs."""
        ...


@runtime_checkable
class DocumentRepository(Protocol):
    """Document records keyed by (tenant, document id); every write is compare-and-set on the
    record's ``revision``, so of two writers that read the same revision exactly one wins
    (the version model's rules are in ``domain.versions``).

    - ``get`` returns None for a missing document or one of another tenant.
    - ``put(document, expected_revision)`` writes the whole record if the stored one still
      has ``expected_revision`` (None: only if there is no record yet), and returns it as
      stored, its ``revision`` one more than expected (1 for a new record); None when the
      stored revision differs (another writer got there first), nothing written.
    - ``using_content(tenant, sha256)`` returns the tenant's documents whose served version
      has that content or that hold a claim for it (deleted ones included).
    """

    def get(self, tenant: str, document_id: str) -> Document | None: ...

    def put(self, document: Document, expected_revision: int | None) -> Document | None: ...

    def using_content(self, tenant: str, sha256: str) -> list[Document]: ...


@runtime_checkable
class SearchMetrics(Protocol):
    """Counters search adds to. Never raises: a figure that cannot be recorded is lost."""

    def skipped_candidate(self, reason: str) -> None: ...


@runtime_checkable
class UsageMetrics(Protocol):
    """Per-tenant counters of what jobs cost (``domain.usage.Usage``), for the metrics
    endpoint. Never raises: a figure that cannot be recorded is lost."""

    def add(self, tenant: str, usage: Usage) -> None: ...


@runtime_checkable
class UsageLedger(Protocol):
    """What jobs cost, summed per tenant and per day of their creation (UTC): a job store
    that can add up its jobs' ``usage``. ``tenant`` None means every tenant; ``since``
    keeps the days from that one on. Ordered by tenant, then day."""

    def usage_by_day(self, *, tenant: str | None = None,
                     since: date | None = None) -> list[UsageDay]: ...


@runtime_checkable
class Embedder(Protocol):
    """Text to vectors of a fixed dimension, in input order, one vector per text.

    Vectors are L2-normalised so cosine similarity is a dot product.

    - ``count_tokens`` counts a text in the model's own tokens, including whatever the model
      adds to every input (BERT's [CLS] and [SEP]), without truncating; it loads no model
      weights.
    - ``max_input_tokens`` is the most tokens (as ``count_tokens`` counts) the model reads of
      one input: a text within it is embedded whole. The chunker keeps every chunk within it.
    """

    @property
    def dimension(self) -> int: ...

    @property
    def model_name(self) -> str: ...

    @property
    def max_input_tokens(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def generate_embeddings(self, texts: Sequence[str]) -> list[list[float]]: ...


@runtime_checkable
class QueryEmbedder(Protocol):
    """An embedder whose model embeds a search query differently from a passage (E5's
    ``query:`` prefix): search embeds the query with ``embed_query`` when it has it."""

    def embed_query(self, text: str) -> list[float]: ...


@runtime_checkable
class DocumentParser(Protocol):
    """A file's bytes to its text and structure (``domain.parsing.ParsedDocument``).

    The type is detected from the bytes, never from a file name. A type it cannot read is
    PermanentError ``unsupported content type: <type>``; empty, corrupt, encrypted, oversized
    or textless input is PermanentError with the reason. Pure CPU on the bytes given: no I/O,
    no downloads, deterministic (same bytes, same result).
    """

    def parse(self, data: bytes) -> ParsedDocument: ...


@runtime_checkable
class KeywordExtractor(Protocol):
    """The most telling keywords of a text, best first, at most ``max_keywords``, lower case,
    without duplicates. Empty text gives an empty list."""

    def generate_keywords(self, text: str, max_keywords: int = 10) -> list[str]: ...


@runtime_checkable
class VectorIndex(Protocol):
    """Vectors with metadata, one namespace per tenant.

    - ``upsert_vector`` is idempotent by id: the same id twice leaves one vector (even when two
      processes upsert the same ids at the same moment).
    - ``semantic_search`` returns at most ``top_k`` hits, best (highest cosine) first, only from
      the tenant's namespace and only those matching ``metadata_filter``.
    - ``delete_ids`` and ``delete_document`` of missing vectors are not errors.
    - ``list_ids`` returns the ids of the tenant's vectors whose id starts with ``prefix``.
    """

    def upsert_vector(self, tenant: str, vectors: Sequence[VectorRecord]) -> None: ...

    def semantic_search(
        self,
        tenant: str,
        vector: Sequence[float],
        top_k: int,
        metadata_filter: MetadataFilter | None = None,
    ) -> list[VectorHit]: ...

    def delete_ids(self, tenant: str, ids: Sequence[str]) -> None: ...

    def delete_document(self, tenant: str, document_id: str) -> None: ...

    def count(self, tenant: str) -> int: ...

    def list_ids(self, tenant: str, prefix: str = "") -> list[str]: ...


@runtime_checkable
class InFlightJobs(Protocol):
    """What the broker still carries: the job ids of the messages waiting on (or taken from
    but not acknowledged on) the stage queues, read without consuming them. The reconciler
    leaves these jobs alone."""

    def jobs_in_flight(self) -> set[str]: ...


@runtime_checkable
class KeywordSearchable(Protocol):
    """A vector index that also keeps a full-text index of each record's ``text``.

    ``keyword_search`` returns at most ``top_k`` hits of the tenant's namespace that match
    ``metadata_filter`` and share words with ``query``, best (highest lexical score, BM25 or
    close to it) first; scores compare only within one answer. A record upserted without
    text is never a keyword hit; deleting a vector deletes its text. The query is plain
    words: no operator or quoting syntax is interpreted, whatever it contains.
    """

    def keyword_search(
        self,
        tenant: str,
        query: str,
        top_k: int,
        metadata_filter: MetadataFilter | None = None,
    ) -> list[VectorHit]: ...


@runtime_checkable
class StageDispatcher(Protocol):
    """Puts a job's remaining stages on the broker, starting at ``stage``.

    Messages carry the job id only. Sending the same job twice is safe (every stage is
    idempotent) but wasteful. ``lane`` orders waiting work across jobs: a free worker takes
    a message of a lower lane first (0 is the first; lanes past the last are the last); every
    stage and every retry of the job keep it (see ``pipeline.fairness``).
    """

    def dispatch(self, job_id: str, stage: Stage, lane: int = 0) -> None: ...


@runtime_checkable
class Compactable(Protocol):
    """A store that needs periodic compaction (an embedded vector database adds a version on
    every write). ``optimize`` is safe to run at any time beside readers and writers."""

    def optimize(self) -> int: ...


@runtime_checkable
class DimensionChecked(Protocol):
    """A vector index that can tell, before the first upsert, whether its stored dimension
    matches the embedder's: ``check_dimension`` raises ConfigurationError naming both."""

    def check_dimension(self) -> None: ...


@runtime_checkable
class JobPages(Protocol):
    """Keyset pages of a tenant's jobs, newest first (``created_at`` then ``job_id``, both
    descending). ``after`` is the (created_at, job_id) of the last job of the previous page;
    jobs created while paging never shift a page. Nothing for a limit below 1."""

    def list_jobs_page(
        self,
        *,
        tenant: str,
        status: JobStatus | None = None,
        limit: int = 50,
        after: tuple[datetime, str] | None = None,
    ) -> list[IngestionJob]: ...


@runtime_checkable
class UserRepository(Protocol):
    """User accounts and their API keys (the seed's UserRepository).

    - ``create`` is create-or-get by email: a second call with the same email returns the
      stored user unchanged.
    - ``get`` and ``get_by_email`` return None for a missing user.
    - ``activate`` sets the user active (idempotent); None for a missing user.
    - ``add_key`` stores a key record (never the key); ``get_key`` returns None for a missing
      key; ``list_keys`` returns the user's keys, revoked ones too, oldest first.
    - ``revoke_key`` marks the user's key revoked (the first revocation time is kept) and
      returns it; None if the key is missing or another user's.
    """

    def create(self, user: User) -> User: ...

    def get(self, user_id: str) -> User | None: ...

    def get_by_email(self, email: str) -> User | None: ...

    def activate(self, user_id: str) -> User | None: ...

    def add_key(self, key: ApiKey) -> None: ...

    def get_key(self, key_id: str) -> ApiKey | None: ...

    def list_keys(self, user_id: str) -> list[ApiKey]: ...

    def revoke_key(self, user_id: str, key_id: str) -> ApiKey | None: ...


@runtime_checkable
class UserVerificationRepository(Protocol):
    """Each user's live verification codes and the guesses made against them (the seed's
    UserVerificationRepository).

    - ``add(code, max_live)`` stores a code beside the user's live ones and returns True; it
      never removes or changes a live code. When the user already has ``max_live`` live codes
      it stores nothing and returns False. The guess count is kept while any code lives; it
      starts at 0 only when the user had none.
    - ``get`` returns the live codes (oldest first) and the guess count, or None when no code
      lives. Expired codes are never returned (the store also removes them by itself, e.g. a
      MongoDB TTL index).
    - ``count_attempt`` atomically adds one to the user's guess count and returns the new
      count, or None when no code lives; concurrent callers each get a distinct count, and a
      concurrent ``add`` loses none.
    - ``delete`` removes the user's codes and count; not an error when there are none.
    """

    def add(self, code: VerificationCode, max_live: int) -> bool: ...

    def get(self, user_id: str) -> PendingVerification | None: ...

    def count_attempt(self, user_id: str) -> int | None: ...

    def delete(self, user_id: str) -> None: ...


@runtime_checkable
class RequestLimiter(Protocol):
    """Requests counted per key in a sliding window, one budget for every process that uses
    the same store (the API's limits on registration and verification).

    - ``hit(key, limit, window_seconds)``: when fewer than ``limit`` hits on ``key`` were
      counted in the last ``window_seconds``, counts this one and returns 0.0; otherwise
      counts nothing and returns the seconds (> 0) until one more hit would be allowed.
    - Keys are independent, and a hit is forgotten ``window_seconds`` after it was counted.
    - TransientError when the store cannot be reached.
    """

    def hit(self, key: str, limit: int, window_seconds: float) -> float: ...


@runtime_checkable
class Notifier(Protocol):
    """Tells a user their verification code (email, or an outbox for the local stack).
    TransientError when the message could not be handed over and may be tried again."""

    def send_verification_code(self, email: str, code: str) -> None: ...


@dataclass(frozen=True)
class ListedObject:
    """One object of a listing: its key, size, last change and (S3) entity tag."""

    key: str
    size: int
    modified: datetime
    etag: str = ""


@runtime_checkable
class UrlFetcher(Protocol):
    """A document's bytes from an ``http(s)://`` URL given by a user.

    - ``check`` refuses, before any request, what ``open`` would refuse before one: another
      scheme, or a host resolving to an address outbound requests may not reach (loopback,
      private, link-local, unless a setting allows it).
    - ``open`` streams the body; every redirect hop is checked as ``check`` does; the body
      is refused past the size limit while it streams. PermanentError for a refusal, a 4xx,
      too many redirects; TransientError for timeouts, lost connections, 429 and 5xx.
    """

    def check(self, url: str) -> None: ...

    def open(self, url: str) -> BinaryIO: ...


@runtime_checkable
class BucketSource(Protocol):
    """Objects of any bucket the object-store credentials can read (``s3://bucket/key``).

    - ``list_objects`` yields the objects under ``prefix`` in key order, one page of the
      listing at a time (never the whole listing in memory).
    - ``open`` streams one object; NotFoundError when it is missing.
    """

    def list_objects(self, bucket: str, prefix: str) -> Iterator[ListedObject]: ...

    def open(self, bucket: str, key: str) -> BinaryIO: ...


@runtime_checkable
class DocumentsBySource(Protocol):
    """A tenant's document records whose ``source`` starts with ``prefix`` (deleted ones
    included), in source order, read in batches (``conversa sync --delete``)."""

    def documents_under(self, tenant: str, prefix: str) -> Iterator[Document]: ...


@runtime_checkable
class CallbackRepository(Protocol):
    """Each tenant's callback settings (``domain.callbacks.TenantCallback``).

    - ``get`` returns None for a tenant that never set one.
    - ``ensure(tenant, secret)`` returns the tenant's settings, creating them (no URL, this
      secret) when missing; concurrent callers all get the one stored.
    - ``set_url`` stores the URL (None removes it), keeping the secret; returns the settings.
    """

    def get(self, tenant: str) -> TenantCallback | None: ...

    def ensure(self, tenant: str, secret: str) -> TenantCallback: ...

    def set_url(self, tenant: str, url: str | None) -> TenantCallback: ...


@runtime_checkable
class CallbackSender(Protocol):
    """POSTs a callback to a producer's URL through the same address guard as the URL
    fetcher (``check`` refuses a URL before any request, as ``UrlFetcher.check``).
    ``post`` returns on a 2xx; TransientError for timeouts, lost connections, 408, 429 and
    5xx (worth trying again), PermanentError for other answers and refused addresses."""

    def check(self, url: str) -> None: ...

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None: ...


@runtime_checkable
class JobEvents(Protocol):
    """A tenant's recent job events, in order, each with an id that only grows.

    - ``publish`` appends one (a bounded log: the oldest are dropped past its length); it
      never raises (an event that cannot be recorded is lost, the job is not).
    - ``latest`` is the id of the tenant's newest event ("0" when there is none): reading
      after it gets only what is published from then on.
    - ``read(tenant, after, wait_seconds)`` returns the events after id ``after`` ("0" for
      all kept), waiting up to ``wait_seconds`` for one; [] when none came.
    """

    def publish(self, tenant: str, event: Mapping[str, object]) -> None: ...

    def latest(self, tenant: str) -> str: ...

    def read(self, tenant: str, after: str, wait_seconds: float
             ) -> list[tuple[str, dict[str, object]]]: ...


@runtime_checkable
class CallbackDispatcher(Protocol):
    """Puts a callback delivery of the job's current end on the broker (its own queue, so
    a slow receiver never holds up a stage)."""

    def dispatch_callback(self, job_id: str) -> None: ...


@runtime_checkable
class ObjectListing(Protocol):
    """An object store that can list its keys: ``list_objects(prefix)`` yields every object
    whose key starts with ``prefix`` (in no promised order), with its size and the time it
    was last written (UTC)."""

    def list_objects(self, prefix: str) -> Iterator[ListedObject]: ...


@runtime_checkable
class DocumentPages(Protocol):
    """Keyset pages of a tenant's document records in ``document_id`` order (deleted ones
    included): ``after`` is the last id of the previous page; ``updated_since`` keeps only
    records written at or after that time. ``tenants`` lists every tenant with a record."""

    def list_documents_page(self, *, tenant: str, after: str | None = None, limit: int = 100,
                            updated_since: datetime | None = None) -> list[Document]: ...

    def tenants(self) -> list[str]: ...


@runtime_checkable
class IndexRegistry(Protocol):
    """Which vector index serves each tenant (``domain.indexes``) and the re-index runs.

    - ``get_route`` returns None for a tenant that was never moved (the settings' index).
    - ``put_route(route, expected_revision)`` is compare-and-set on the revision, as
      ``DocumentRepository.put``: the stored route (revision one more), or None when another
      writer got there first (None expected: only if there is no route yet).
    - ``get_run`` returns the tenant's latest run, or None; ``save_run`` replaces it by
      ``run_id`` (upsert).
    """

    def get_route(self, tenant: str) -> IndexRoute | None: ...

    def put_route(self, route: IndexRoute, expected_revision: int | None
                  ) -> IndexRoute | None: ...

    def get_run(self, tenant: str) -> ReindexRun | None: ...

    def save_run(self, run: ReindexRun) -> None: ...


@dataclass(frozen=True)
class PlacedIndex:
    """One vector index and the name (table or namespace) it keeps a tenant's vectors under."""

    index: VectorIndex
    name: Callable[[str], str]


@runtime_checkable
class RoutedIndex(Protocol):
    """A VectorIndex that sends each tenant to the index its route names (adapters/routing):
    ``placed(target)`` is where ``target`` keeps a tenant's vectors (None: the settings'
    index), its adapter built once per target."""

    def placed(self, target: IndexTarget | None) -> PlacedIndex: ...

