"""The VectorIndex port on Pinecone (the ``pinecone`` SDK 10.x over REST): a namespace per tenant.

- **Client.** The SDK's ``Index`` for the index host is built on first use, not at import or
  construction, and built again in a forked child (``os.getpid()`` changed), so each worker
  process owns its connection pool.
- **Limits.** Upserts go out in batches of at most ``max_batch_vectors`` (≤ 1,000) vectors and
  ``max_batch_bytes`` (≤ 2 MB) of JSON, measured by serializing each vector as the SDK will
  (``json.dumps`` with ASCII escapes, never shorter than the SDK's orjson output). Every record
  is checked before the first batch is sent: the index's dimension, finite values, an ASCII id
  of 1-512 characters and metadata of at most 40 KB (keep chunk text in the object store),
  so bad input fails with PermanentError without writing half a document. Deletes by id go
  in batches of at most 1,000. A delete in a tenant's namespace that does not exist yet
  (serverless answers 404 "Namespace not found") deletes nothing and is not an error.
- **Deleting a document** sends a metadata-filter delete ``{"document_id": {"$eq": id}}``,
  which works on pod-based indexes (which cannot list ids) and on serverless indexes that
  support it. An index that refuses it with 400 (serverless and starter indexes have done so,
  "do not support deleting with metadata filtering") gets the fallback from then on: list
  the ids starting with ``<document_id>.`` or ``<document_id>#`` (the vector-id convention of
  ``domain.documents.version_id`` and ``chunk_id``) and delete those in batches.
- **Filters.** Our MetadataFilter becomes Pinecone's language: a scalar is ``$eq``, a list is
  ``$in``, fields combine with an implicit ``$and``; an empty list matches nothing and is not
  sent. Pinecone stores metadata numbers as floats: whole numbers come back as ints.
- **Errors** are translated in one place, :func:`translate_error`: 429, 408, 5xx, timeouts and
  connection failures are TransientError (with the server's ``Retry-After`` as
  ``retry_after``); 400, 401, 403, 404, 413 and the SDK's own argument checks are
  PermanentError. Messages never contain the API key.
- **Retries.** The SDK retries 408/429/5xx and connection errors itself. 10.x gives the REST
  data plane no retry setting (``Pinecone(retry_config=...)`` stops at the control plane) and
  by default honours ``Retry-After`` up to 60 s per retry, so the client's retry policy is
  replaced after it is built: ``retries`` retries, waits of ``retry_backoff`` seconds and up,
  each capped at ``retry_max_wait`` (Retry-After included, plus the SDK's jitter of up to
  half). The caller then gets TransientError with the full ``retry_after`` and retries later.
  The SDK also keeps a process-wide retry budget per host: after a few dozen retryable
  answers it stops retrying until enough calls have succeeded, and TransientError comes out
  at once.
- **Consistency.** Pinecone serverless is eventually consistent: a vector may take a moment to
  appear in ``semantic_search``, ``count`` and ``list_ids`` after ``upsert_vector`` returns.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from adapters.per_process import PerProcess
from adapters.ports import MetadataFilter
from domain.documents import VectorHit, VectorRecord
from domain.errors import ConfigurationError, ConversaError, PermanentError, TransientError
from domain.filters import Range

if TYPE_CHECKING:
    from pinecone import Index
    from pinecone.models.vectors.responses import ListResponse

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Pinecone's data-plane limits.
MAX_UPSERT_VECTORS = 1_000
MAX_UPSERT_BYTES = 2 * 1024 * 1024
MAX_METADATA_BYTES = 40 * 1024
MAX_IDS_PER_REQUEST = 1_000
MAX_TOP_K = 10_000
MAX_ID_LENGTH = 512
LIST_PAGE_SIZE = 100

_TRANSIENT_STATUSES = frozenset({408, 429})

MetadataValue = str | int | float | bool | list[str]


class PineconeVectorIndex:
    """Vectors of ``dimension`` floats in the Pinecone index served at ``host``.

    ``host`` is the index's data-plane host (``https://<index>-<project>.svc.<region>.pinecone.io``,
    or ``http://127.0.0.1:PORT`` for a local fake; a host without a scheme means https).
    ``timeout`` bounds each HTTP attempt. ``pool_threads`` is passed to the SDK, which uses it
    only for its legacy ``async_req`` calls (never made here). See the module docstring for
    batching, retries and errors.
    """

    def __init__(
        self,
        api_key: str,
        host: str,
        dimension: int,
        *,
        timeout: float = 30,
        max_batch_vectors: int = MAX_UPSERT_VECTORS,
        max_batch_bytes: int = 2_000_000,
        pool_threads: int = 1,
        retries: int = 3,
        retry_backoff: float = 0.25,
        retry_max_wait: float = 2.0,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ConfigurationError("the Pinecone API key is empty")
        if not host or not host.strip():
            raise ConfigurationError("the Pinecone index host is empty")
        if dimension < 1:
            raise ConfigurationError(f"vector dimension must be positive, got {dimension}")
        if not 1 <= max_batch_vectors <= MAX_UPSERT_VECTORS:
            raise ConfigurationError(
                f"max_batch_vectors must be 1..{MAX_UPSERT_VECTORS}, got {max_batch_vectors}")
        if not 1 <= max_batch_bytes <= MAX_UPSERT_BYTES:
            raise ConfigurationError(
                f"max_batch_bytes must be 1..{MAX_UPSERT_BYTES}, got {max_batch_bytes}")
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be positive, got {timeout}")
        if retries < 0 or retry_backoff < 0 or retry_max_wait < 0 or pool_threads < 1:
            raise ConfigurationError(
                "retries, retry_backoff and retry_max_wait must not be negative and "
                "pool_threads must be positive")
        self._api_key = api_key
        self._host = host.strip()
        self._dimension = dimension
        self._timeout = float(timeout)
        self._max_batch_vectors = max_batch_vectors
        self._max_batch_bytes = max_batch_bytes
        self._pool_threads = pool_threads
        self._retries = retries
        self._retry_backoff = retry_backoff
        self._retry_max_wait = retry_max_wait
        self._client: PerProcess[Index] = PerProcess(self._connect)
        #: False once the index refused a delete by metadata filter.
        self._filter_delete = True

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def host(self) -> str:
        return self._host

    def __repr__(self) -> str:
        return f"PineconeVectorIndex(host={self._host!r}, dimension={self._dimension})"

    # -- the SDK client -----------------------------------------------------------------------

    def _index(self) -> Index:
        """This process's SDK client (built on first use, and again after a fork)."""
        return self._client.get()

    def _connect(self) -> Index:
        from pinecone import Index

        client = Index(
            host=self._host,
            api_key=self._api_key,
            timeout=self._timeout,
            source_tag="conversa_ingest",
            pool_threads=self._pool_threads,
            # A plain-http host (a local fake) has no TLS to verify; skipping the
            # CA bundle saves ~80 ms per client. https hosts are always verified.
            ssl_verify=not self._host.lower().startswith("http://"),
        )
        _bound_sdk_retries(client, self._retries, self._retry_backoff, self._retry_max_wait)
        return client

    def close(self) -> None:
        """Close this process's HTTP connections (the next call opens new ones)."""
        client = self._client.discard()
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # closing is best effort
                logger.debug("closing the Pinecone client failed: %s", exc)

    def _call(self, action: str, operation: Callable[[Index], T]) -> T:
        """Run ``operation`` on the SDK client; every failure leaves as a domain error."""
        try:
            return operation(self._index())
        except Exception as exc:
            raise translate_error(exc, action, secret=self._api_key) from exc

    # -- the port -----------------------------------------------------------------------------

    def upsert_vector(self, tenant: str, vectors: Sequence[VectorRecord]) -> None:
        namespace = _namespace(tenant)
        # The same id twice in one call: the last one wins, as with separate calls.
        unique = list({record.id: record for record in vectors}.values())
        if not unique:
            return
        payloads = [self._payload(record) for record in unique]
        for batch in self._batches(payloads, namespace):

            def send(index: Index, batch: list[dict[str, Any]] = batch) -> object:
                return index.upsert(vectors=batch, namespace=namespace)

            self._call(f"upsert {len(batch)} vectors for tenant {tenant}", send)

    def _payload(self, record: VectorRecord) -> tuple[dict[str, Any], int]:
        """The record as the SDK sends it and its serialized size; PermanentError if Pinecone
        would refuse it."""
        _check_id(record.id)
        if len(record.values) != self._dimension:
            raise PermanentError(
                f"vector {record.id} has dimension {len(record.values)}, "
                f"the Pinecone index expects dimension {self._dimension}")
        if not all(math.isfinite(value) for value in record.values):
            raise PermanentError(f"vector {record.id} contains NaN or infinite values")
        if not any(record.values):
            raise PermanentError(
                f"vector {record.id} is all zeros, which a cosine index cannot store")
        payload: dict[str, Any] = {"id": record.id, "values": list(record.values)}
        payload.update(_metadata_field(record))
        return payload, len(json.dumps(payload, separators=(",", ":")))

    def _batches(self, payloads: Sequence[tuple[dict[str, Any], int]],
                 namespace: str) -> Iterator[list[dict[str, Any]]]:
        """Consecutive batches within the vector and byte limits (separators included)."""
        overhead = len(json.dumps({"vectors": [], "namespace": namespace},
                                  separators=(",", ":")))
        batch: list[dict[str, Any]] = []
        size = overhead
        for payload, cost in payloads:
            if overhead + cost > self._max_batch_bytes:
                raise PermanentError(
                    f"vector {payload['id']} alone needs {overhead + cost} bytes, over the "
                    f"{self._max_batch_bytes}-byte request limit")
            extra = cost + (1 if batch else 0)
            if batch and (len(batch) >= self._max_batch_vectors
                          or size + extra > self._max_batch_bytes):
                yield batch
                batch, size, extra = [], overhead, cost
            batch.append(payload)
            size += extra
        if batch:
            yield batch

    def semantic_search(
        self,
        tenant: str,
        vector: Sequence[float],
        top_k: int,
        metadata_filter: MetadataFilter | None = None,
    ) -> list[VectorHit]:
        namespace = _namespace(tenant)
        if len(vector) != self._dimension:
            raise PermanentError(
                f"query vector has dimension {len(vector)}, "
                f"the Pinecone index expects dimension {self._dimension}")
        if not all(math.isfinite(value) for value in vector):
            raise PermanentError("the query vector contains NaN or infinite values")
        if top_k <= 0:
            return []
        translated = translate_filter(metadata_filter)
        if translated is _MATCHES_NOTHING:
            return []
        pinecone_filter = translated if isinstance(translated, dict) else None
        limit = min(top_k, MAX_TOP_K)
        query = list(vector)
        response = self._call(
            f"search the vectors of tenant {tenant}",
            lambda index: index.query(
                vector=query, top_k=limit, namespace=namespace, filter=pinecone_filter,
                include_metadata=True, include_values=False),
        )
        hits = [
            VectorHit(id=match.id, score=float(match.score),
                      metadata=_from_pinecone(match.metadata or {}))
            for match in response.matches
        ]
        hits.sort(key=lambda hit: (-hit.score, hit.id))
        return hits[:top_k]

    def delete_ids(self, tenant: str, ids: Sequence[str]) -> None:
        namespace = _namespace(tenant)
        wanted = sorted(set(ids))
        for vector_id in wanted:
            _check_id(vector_id)
        for start in range(0, len(wanted), MAX_IDS_PER_REQUEST):
            batch = wanted[start : start + MAX_IDS_PER_REQUEST]

            def send(index: Index, batch: list[str] = batch) -> None:
                index.delete(ids=batch, namespace=namespace)

            try:
                self._call(f"delete {len(batch)} vectors of tenant {tenant}", send)
            except PermanentError as exc:
                if _namespace_missing(exc):
                    return  # nothing was ever written for this tenant
                raise

    def delete_document(self, tenant: str, document_id: str) -> None:
        namespace = _namespace(tenant)
        if not document_id:
            raise PermanentError("document id must not be empty")
        action = f"delete document {document_id} of tenant {tenant}"
        if self._filter_delete:
            try:
                self._call(action, lambda index: index.delete(
                    filter={"document_id": {"$eq": document_id}}, namespace=namespace))
                return
            except PermanentError as exc:
                if _namespace_missing(exc):
                    return  # nothing was ever written for this tenant
                if _status(exc.__cause__) != 400:
                    raise
                logger.warning(
                    "Pinecone index %s refused a delete by metadata filter (%s); deleting "
                    "documents by listing their chunk ids from now on", self._host, exc)
                self._filter_delete = False
        # Chunk ids of every version (``<document id>.<version>#<n>``) and of the older,
        # unversioned form (``<document id>#<n>``).
        ids = [vector_id for vector_id in self.list_ids(tenant, prefix=document_id)
               if vector_id[len(document_id):len(document_id) + 1] in (".", "#")]
        self.delete_ids(tenant, ids)

    def count(self, tenant: str) -> int:
        namespace = _namespace(tenant)
        stats = self._call(f"count the vectors of tenant {tenant}",
                           lambda index: index.describe_index_stats())
        summary = stats.namespaces.get(namespace)
        return 0 if summary is None else int(summary.vector_count)

    def list_ids(self, tenant: str, prefix: str = "") -> list[str]:
        namespace = _namespace(tenant)
        ids: list[str] = []
        token: str | None = None
        while True:

            def fetch_page(index: Index, token: str | None = token) -> ListResponse:
                return index.list_paginated(prefix=prefix or None, limit=LIST_PAGE_SIZE,
                                            pagination_token=token, namespace=namespace)

            page = self._call(f"list the vectors of tenant {tenant}", fetch_page)
            ids.extend(item.id for item in page.vectors if item.id is not None)
            token = page.pagination.next if page.pagination is not None else None
            if not token:
                break
        return sorted(set(ids))

    # -- start-up check -----------------------------------------------------------------------

    def check_dimension(self) -> None:
        """ConfigurationError unless the index stores vectors of this adapter's dimension
        (the embedder's); PermanentError/TransientError if the index cannot be asked."""
        stats = self._call("describe the index", lambda index: index.describe_index_stats())
        if stats.dimension is None:
            logger.warning("Pinecone index %s did not report its dimension", self._host)
            return
        if int(stats.dimension) != self._dimension:
            raise ConfigurationError(
                f"the Pinecone index at {self._host} stores vectors of dimension "
                f"{stats.dimension}, but the embedder makes vectors of dimension "
                f"{self._dimension}: use an index created for this embedding model")


# --- helpers -----------------------------------------------------------------------------------


class _Nothing:
    """Marker: the filter can match no vector."""


_MATCHES_NOTHING = _Nothing()


def translate_filter(metadata_filter: MetadataFilter | None) -> dict[str, Any] | _Nothing | None:
    """Our MetadataFilter in Pinecone's filter language (None for no filter).

    A scalar means ``$eq`` (on a list-of-strings field Pinecone matches any element, as
    ``domain.filters.matches`` does); a list means ``$in``, and an empty list matches nothing;
    a Range means ``$gte``/``$gt``/``$lte``/``$lt`` (Pinecone compares numbers only, as
    ``Range.holds`` does).
    """
    if not metadata_filter:
        return None
    translated: dict[str, Any] = {}
    for name, wanted in metadata_filter.items():
        if isinstance(wanted, Range):
            translated[name] = {f"${bound}": value for bound, value in wanted.bounds().items()}
            continue
        if isinstance(wanted, str | int | float | bool):
            translated[name] = {"$eq": wanted}
            continue
        options = list(wanted)
        if not options:
            return _MATCHES_NOTHING
        translated[name] = {"$in": options}
    return translated


def _from_pinecone(metadata: Mapping[str, Any]) -> dict[str, MetadataValue]:
    """Metadata as Pinecone returns it, whole-number floats back to ints."""
    restored: dict[str, MetadataValue] = {}
    for name, value in metadata.items():
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            restored[name] = int(value)
        elif isinstance(value, list):
            restored[name] = [str(item) for item in value]
        else:
            restored[name] = value
    return restored


def _namespace(tenant: str) -> str:
    if not isinstance(tenant, str) or not tenant:
        raise PermanentError("tenant must be a non-empty string")
    if not tenant.isascii() or len(tenant) > 512 or tenant == "__default__":
        raise PermanentError(f"tenant {tenant!r} cannot name a Pinecone namespace")
    return tenant


def _check_id(vector_id: str) -> None:
    if not isinstance(vector_id, str) or not 0 < len(vector_id) <= MAX_ID_LENGTH:
        raise PermanentError(f"vector id must be 1-{MAX_ID_LENGTH} characters: {vector_id!r}")
    if not vector_id.isascii() or "\x00" in vector_id:
        raise PermanentError(f"Pinecone vector ids must be ASCII without NUL: {vector_id!r}")


def _metadata_field(record: VectorRecord) -> dict[str, Any]:
    """``{"metadata": ...}`` of a record with metadata, within Pinecone's per-vector limit
    (PermanentError past it); nothing for a record without."""
    if not record.metadata:
        return {}
    size = len(json.dumps(record.metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise PermanentError(
            f"vector {record.id} has {size} bytes of metadata, Pinecone accepts at "
            f"most {MAX_METADATA_BYTES} per vector: keep text in the object store")
    return {"metadata": dict(record.metadata)}


def _bound_sdk_retries(client: Any, retries: int, backoff: float, max_wait: float) -> None:
    """Replace the SDK's data-plane retry policy, which 10.x offers no setting for.

    It lives on the client's retry transport (``Index._http._client._transport._config``);
    if a later SDK moves it, the SDK's defaults stay in force and a warning says so.
    """
    from pinecone import RetryConfig

    transport = getattr(getattr(getattr(client, "_http", None), "_client", None),
                        "_transport", None)
    current = getattr(transport, "_config", None)
    if not isinstance(current, RetryConfig):
        logger.warning("cannot bound the pinecone SDK's retries (its internals changed); "
                       "its defaults apply (up to 3 retries honouring Retry-After up to 60 s)")
        return
    transport._config = RetryConfig(  # type: ignore[union-attr]
        max_retries=retries,
        backoff_factor=backoff,
        max_wait=max_wait,
        retryable_status_codes=current.retryable_status_codes,
        on_throttle=current.on_throttle,
    )


def _status(exc: BaseException | None) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _namespace_missing(exc: PermanentError) -> bool:
    """Whether the index answered 404 "Namespace not found" (serverless, to a delete in a
    namespace never written): nothing to delete, unlike a 404 for a wrong host."""
    cause = exc.__cause__
    return _status(cause) == 404 and "namespace" in str(getattr(cause, "message", "")).lower()


def _retry_after(exc: BaseException) -> float | None:
    """The server's Retry-After in seconds (numeric or HTTP-date form), when it sent one."""
    given = getattr(exc, "retry_after", None)
    if isinstance(given, int | float) and not isinstance(given, bool) and given >= 0:
        return float(given)
    headers = getattr(exc, "headers", None)
    if not isinstance(headers, Mapping):
        return None
    raw = next((str(v) for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def translate_error(exc: BaseException, action: str, *, secret: str = "") -> ConversaError:
    """The domain error for anything the SDK (or the network under it) raised while doing
    ``action``. ``secret`` (the API key) is masked wherever it might appear in the message."""
    if isinstance(exc, ConversaError):
        return exc
    from pinecone import (
        ApiError,
        PineconeConnectionError,
        PineconeTimeoutError,
        PineconeTypeError,
        PineconeValueError,
    )

    def message(text: str) -> str:
        text = f"Pinecone: {action} failed: {text}"
        return text.replace(secret, "***") if secret else text

    if isinstance(exc, ApiError):
        status = exc.status_code
        detail = f"[{status}] {exc.message}"
        if status in _TRANSIENT_STATUSES or 500 <= status <= 599:
            return TransientError(message(detail), retry_after=_retry_after(exc))
        if status in (401, 403):
            return PermanentError(message(
                f"{detail} (the API key was refused: check CONVERSA_PINECONE_API_KEY and "
                "that the key belongs to the index's project)"))
        if status == 404:
            return PermanentError(message(
                f"{detail} (no such index or path: check the index host)"))
        return PermanentError(message(detail))
    if isinstance(exc, PineconeTimeoutError | PineconeConnectionError):
        return TransientError(message(f"{type(exc).__name__}: {exc}"))
    if isinstance(exc, PineconeValueError | PineconeTypeError):
        return PermanentError(message(f"invalid request: {exc}"))
    if isinstance(exc, OSError | TimeoutError):
        return TransientError(message(f"{type(exc).__name__}: {exc}"))
    return PermanentError(message(f"{type(exc).__name__}: {exc}"))
