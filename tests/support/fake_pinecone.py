"""A fake Pinecone data-plane server for tests: the REST paths the ``pinecone`` SDK sends.

Pinecone has no local server, so this one stands in for an index's host. It speaks the
serverless data plane as the SDK 10.x sends it (``POST /vectors/upsert``, ``POST /query``,
``GET /vectors/fetch``, ``POST /vectors/delete``, ``POST /describe_index_stats``,
``GET /vectors/list``), keeps vectors in memory per namespace, does exact cosine search with
Pinecone's metadata filter language, and answers like Pinecone does:

- it requires the ``Api-Key`` header (401 otherwise);
- it refuses what Pinecone refuses with status 400 and a body shaped like Pinecone's
  (``{"code": 3, "message": ..., "details": []}``): more than 1,000 vectors or a body over
  2 MB per upsert, metadata over 40 KB per vector, a dimension other than the index's, more
  than 1,000 ids per fetch or delete, ``topK`` outside 1..10,000, malformed filters;
- metadata numbers come back as floats (Pinecone stores them as 64-bit floats);
- a delete in a namespace that was never written answers 404 "Namespace not found", as
  serverless indexes do;
- it can be told to answer 429 (with ``Retry-After``) or 500 for the next N calls, or to
  answer slowly, and it records every request for assertions.

Use it as a context manager: ``with FakePinecone(dimension=8) as fake: ... fake.url``.
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from tests.support.loopback_http import KeepAliveHandler, LoopbackHttpServer

#: Pinecone's documented data-plane limits.
MAX_UPSERT_VECTORS = 1_000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_METADATA_BYTES = 40 * 1024
MAX_IDS_PER_REQUEST = 1_000
MAX_TOP_K = 10_000
MAX_LIST_LIMIT = 100
MAX_ID_LENGTH = 512

#: gRPC status codes Pinecone puts in its error bodies.
INVALID_ARGUMENT = 3
NOT_FOUND = 5
RESOURCE_EXHAUSTED = 8
INTERNAL = 13
UNAUTHENTICATED = 16

DEFAULT_NAMESPACE = "__default__"
DELETE_BY_FILTER_UNSUPPORTED = (
    "Serverless and Starter indexes do not support deleting with metadata filtering"
)

_COMPARISONS = ("$gt", "$gte", "$lt", "$lte")
_OPERATORS = frozenset({"$eq", "$ne", "$in", "$nin", "$exists", *_COMPARISONS})


class FilterError(ValueError):
    """A filter Pinecone would refuse (the server answers 400 with this message)."""


class _Reject(Exception):
    """Answer the current request with ``status`` and a Pinecone-shaped error body."""

    def __init__(self, status: int, code: int, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it."""

    method: str
    path: str
    status: int
    body_size: int
    #: Vectors in an upsert body; 0 for every other request.
    vector_count: int = 0
    #: Ids in a fetch or delete request; 0 for every other request.
    id_count: int = 0
    namespace: str | None = None
    api_version: str | None = None
    #: The ids of the vectors in an upsert body; empty for every other request.
    vector_ids: tuple[str, ...] = ()


@dataclass
class _Failure:
    status: int
    remaining: int
    path: str | None
    retry_after: str | None


@dataclass
class _Slowness:
    seconds: float
    remaining: int
    path: str | None


@dataclass
class _Stored:
    values: list[float]
    metadata: dict[str, Any] = field(default_factory=dict)
    sparse: dict[int, float] = field(default_factory=dict)


# --- metadata filters --------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar_equal(stored: object, wanted: object) -> bool:
    """Pinecone equality: numbers compare as numbers, booleans only with booleans."""
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    if _is_number(stored) and _is_number(wanted):
        return float(stored) == float(wanted)  # type: ignore[arg-type]
    return isinstance(stored, str) and isinstance(wanted, str) and stored == wanted


def _check_scalar(operator: str, value: object) -> None:
    if not (isinstance(value, str | bool) or _is_number(value)):
        raise FilterError(f"{operator} requires a string, number or boolean, got {value!r}")


def _field_condition(
    name: str, operator: str, operand: object, metadata: Mapping[str, Any]
) -> bool:
    present = name in metadata
    stored = metadata.get(name)
    values = stored if isinstance(stored, list) else [stored]
    if operator == "$exists":
        if not isinstance(operand, bool):
            raise FilterError(f"$exists requires a boolean, got {operand!r}")
        return present is operand
    if operator in ("$eq", "$ne"):
        _check_scalar(operator, operand)
        hit = present and any(_scalar_equal(value, operand) for value in values)
        return hit if operator == "$eq" else not hit
    if operator in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise FilterError(f"{operator} requires an array, got {operand!r}")
        for option in operand:
            _check_scalar(operator, option)
        hit = present and any(
            _scalar_equal(value, option) for value in values for option in operand)
        return hit if operator == "$in" else not hit
    if operator in _COMPARISONS:
        if not _is_number(operand):
            raise FilterError(f"{operator} requires a number, got {operand!r}")
        if not present or not _is_number(stored):
            return False
        left, right = float(stored), float(operand)  # type: ignore[arg-type]
        return {
            "$gt": left > right, "$gte": left >= right, "$lt": left < right, "$lte": left <= right,
        }[operator]
    raise FilterError(f"unsupported filter operator {operator!r}")


def matches_filter(metadata: Mapping[str, Any], expression: object) -> bool:
    """Whether ``metadata`` satisfies a Pinecone filter; FilterError if Pinecone would refuse it.

    Fields combine with an implicit ``$and``; a bare value means ``$eq``. On a list-of-strings
    field ``$eq``/``$in`` match when any element does and ``$ne``/``$nin`` only when none does.
    A missing field fails every operator except ``$ne``, ``$nin`` and ``$exists: false``.
    """
    if not isinstance(expression, dict):
        raise FilterError(f"a filter must be an object, got {expression!r}")
    result = True
    for key, condition in expression.items():
        if key in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise FilterError(f"{key} requires a non-empty array of filters")
            outcomes = [matches_filter(metadata, clause) for clause in condition]
            result = result and (all(outcomes) if key == "$and" else any(outcomes))
        elif key.startswith("$"):
            raise FilterError(f"operator {key!r} is not allowed at the top level of a filter")
        elif isinstance(condition, dict):
            if not condition:
                raise FilterError(f"empty condition for field {key!r}")
            for operator, operand in condition.items():
                if operator not in _OPERATORS:
                    raise FilterError(f"unsupported filter operator {operator!r}")
                result = _field_condition(key, operator, operand, metadata) and result
        elif isinstance(condition, list):
            raise FilterError(f"field {key!r}: use $in to match one of several values")
        else:
            result = _field_condition(key, "$eq", condition, metadata) and result
    return result


def _validated_filter(expression: object) -> dict[str, Any]:
    """The filter, checked once against empty metadata so malformed filters fail every time."""
    if not isinstance(expression, dict):
        raise _Reject(400, INVALID_ARGUMENT, f"a filter must be an object, got {expression!r}")
    try:
        matches_filter({}, expression)
    except FilterError as exc:
        raise _Reject(400, INVALID_ARGUMENT, f"Invalid filter: {exc}") from exc
    return expression


# --- the index --------------------------------------------------------------------------------


def _check_sparse(vector_id: str, sparse: object) -> dict[int, float]:
    """A sparse vector's {index: value}; 400 unless indices are distinct 32-bit unsigned
    integers paired with finite numbers, at least one of them."""
    if not isinstance(sparse, dict):
        raise _Reject(400, INVALID_ARGUMENT, f"Vector {vector_id}: sparseValues are required")
    indices, values = sparse.get("indices"), sparse.get("values")
    if not isinstance(indices, list) or not isinstance(values, list) \
            or len(indices) != len(values) or not indices:
        raise _Reject(400, INVALID_ARGUMENT,
                      f"Vector {vector_id}: sparse indices and values must be non-empty "
                      "arrays of the same length")
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**32
               for i in indices) or len(set(indices)) != len(indices):
        raise _Reject(400, INVALID_ARGUMENT,
                      f"Vector {vector_id}: sparse indices must be distinct uint32")
    if not all(_is_number(v) and math.isfinite(float(v)) for v in values):
        raise _Reject(400, INVALID_ARGUMENT, f"Vector {vector_id}: sparse values must be numbers")
    return {int(i): float(v) for i, v in zip(indices, values, strict=True)}


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _stored_metadata(vector_id: str, metadata: object) -> dict[str, Any]:
    """Metadata as Pinecone keeps it (numbers as floats), or _Reject like Pinecone."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise _Reject(400, INVALID_ARGUMENT, f"Metadata of vector {vector_id} must be an object")
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise _Reject(400, INVALID_ARGUMENT,
                      f"Metadata size is {size} bytes, which exceeds the limit of "
                      f"{MAX_METADATA_BYTES} bytes per vector")
    kept: dict[str, Any] = {}
    for key, value in metadata.items():
        if isinstance(value, str | bool):
            kept[key] = value
        elif _is_number(value):
            kept[key] = float(value)
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            kept[key] = list(value)
        else:
            raise _Reject(400, INVALID_ARGUMENT,
                          f"Metadata value for field '{key}' of vector {vector_id} must be a "
                          f"string, number, boolean or list of strings, got {value!r}")
    return kept


class FakePinecone(LoopbackHttpServer):
    """An in-memory Pinecone index of ``dimension`` (cosine) served on 127.0.0.1.

    ``delete_by_filter=False`` makes it refuse ``POST /vectors/delete`` with a filter the way
    serverless indexes used to (400), to exercise a client's fallback. ``sparse=True`` makes
    it a sparse index (``vector_type="sparse"``, dotproduct): vectors are ``sparseValues``
    only and queries a ``sparseVector``.
    """

    def __init__(self, *, dimension: int, api_key: str = "fake-pinecone-key",
                 delete_by_filter: bool = True, bind: str = "127.0.0.1",
                 sparse: bool = False) -> None:
        super().__init__(bind)
        self.dimension = dimension
        self.sparse = sparse
        self.api_key = api_key
        self.delete_by_filter = delete_by_filter
        self._lock = threading.Lock()
        self._namespaces: dict[str, dict[str, _Stored]] = {}
        self._failures: list[_Failure] = []
        self._slowness: list[_Slowness] = []
        self._log: list[RecordedRequest] = []

    # -- lifecycle ---------------------------------------------------------------------------

    thread_name = "fake-pinecone"

    def start(self) -> Self:
        super().start()
        reset_sdk_retry_budget()
        return self

    @property
    def url(self) -> str:
        """The index host to give the SDK: ``http://127.0.0.1:PORT``."""
        return self.origin

    # -- test controls -----------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 429, *, path: str | None = None,
                  retry_after: float | str | None = "auto") -> None:
        """Answer the next ``count`` calls (to ``path``, or to any path) with ``status``.

        ``Retry-After`` is sent with ``retry_after`` (seconds or an HTTP date) when given; by
        default 429 answers say ``1`` and other statuses send none; None sends none.
        """
        if retry_after == "auto":
            retry_after = 1 if status == 429 else None
        header = None if retry_after is None else str(retry_after)
        with self._lock:
            self._failures.append(_Failure(status, count, path, header))

    def slow_next(self, count: int, seconds: float, *, path: str | None = None) -> None:
        """Wait ``seconds`` before answering the next ``count`` calls (to ``path`` or any)."""
        with self._lock:
            self._slowness.append(_Slowness(seconds, count, path))

    def clear_faults(self) -> None:
        """Forget the injected failures and slowness not served yet; vectors stay."""
        with self._lock:
            self._failures.clear()
            self._slowness.clear()

    def reset(self) -> None:
        """Forget every vector, injected failure and recorded request."""
        with self._lock:
            self._namespaces.clear()
            self._failures.clear()
            self._slowness.clear()
            self._log.clear()
        reset_sdk_retry_budget()

    def requests(self, path: str | None = None) -> list[RecordedRequest]:
        """The requests received so far (to ``path`` only, when given), oldest first."""
        with self._lock:
            return [r for r in self._log if path is None or r.path == path]

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def ids(self, namespace: str) -> list[str]:
        with self._lock:
            return sorted(self._namespaces.get(namespace, {}))

    def metadata(self, namespace: str, vector_id: str) -> dict[str, Any] | None:
        with self._lock:
            stored = self._namespaces.get(namespace, {}).get(vector_id)
            return None if stored is None else dict(stored.metadata)

    def namespaces(self) -> dict[str, int]:
        """Vector count per non-empty namespace."""
        with self._lock:
            return {name: len(vectors) for name, vectors in self._namespaces.items() if vectors}

    # -- called by the handler ---------------------------------------------------------------

    def _injected(self, path: str) -> tuple[_Failure | None, float]:
        with self._lock:
            delay = 0.0
            for slow in self._slowness:
                if slow.remaining > 0 and slow.path in (None, path):
                    slow.remaining -= 1
                    delay = slow.seconds
                    break
            self._slowness = [s for s in self._slowness if s.remaining > 0]
            chosen = None
            for failure in self._failures:
                if failure.remaining > 0 and failure.path in (None, path):
                    failure.remaining -= 1
                    chosen = failure
                    break
            self._failures = [f for f in self._failures if f.remaining > 0]
            return chosen, delay

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._log.append(request)

    def _check_values(self, vector_id: str, values: object) -> list[float]:
        if not isinstance(values, list) or not all(_is_number(v) for v in values):
            raise _Reject(400, INVALID_ARGUMENT, f"Vector {vector_id} values must be numbers")
        if len(values) != self.dimension:
            raise _Reject(400, INVALID_ARGUMENT,
                          f"Vector dimension {len(values)} does not match the dimension of the "
                          f"index {self.dimension}")
        floats = [float(v) for v in values]
        if not any(floats):
            raise _Reject(400, INVALID_ARGUMENT,
                          f"Dense vector {vector_id} must contain at least one non-zero value")
        return floats

    def upsert(self, body: Mapping[str, Any]) -> dict[str, Any]:
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            raise _Reject(400, INVALID_ARGUMENT, "vectors must be a non-empty array")
        if len(vectors) > MAX_UPSERT_VECTORS:
            raise _Reject(400, INVALID_ARGUMENT,
                          f"Request contains {len(vectors)} vectors, which exceeds the limit of "
                          f"{MAX_UPSERT_VECTORS} vectors per upsert request")
        staged: dict[str, _Stored] = {}
        for vector in vectors:
            if not isinstance(vector, dict):
                raise _Reject(400, INVALID_ARGUMENT, "each vector must be an object")
            vector_id = vector.get("id")
            if not isinstance(vector_id, str) or not 0 < len(vector_id) <= MAX_ID_LENGTH:
                raise _Reject(400, INVALID_ARGUMENT,
                              f"Vector id must be a string of 1 to {MAX_ID_LENGTH} characters")
            metadata = _stored_metadata(vector_id, vector.get("metadata"))
            if self.sparse:
                if vector.get("values"):
                    raise _Reject(400, INVALID_ARGUMENT,
                                  f"Vector {vector_id}: a sparse index takes no dense values")
                staged[vector_id] = _Stored([], metadata,
                                            _check_sparse(vector_id, vector.get("sparseValues")))
                continue
            staged[vector_id] = _Stored(self._check_values(vector_id, vector.get("values")),
                                        metadata)
        with self._lock:
            self._namespaces.setdefault(_namespace(body), {}).update(staged)
        return {"upsertedCount": len(vectors)}

    def query(self, body: Mapping[str, Any]) -> dict[str, Any]:
        top_k = body.get("topK")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise _Reject(400, INVALID_ARGUMENT,
                          f"topK must be an integer between 1 and {MAX_TOP_K}, got {top_k!r}")
        namespace = _namespace(body)
        expression = body.get("filter")
        wanted = _validated_filter(expression) if expression is not None else None
        with self._lock:
            records = dict(self._namespaces.get(namespace, {}))
        if self.sparse:
            if body.get("vector"):
                raise _Reject(400, INVALID_ARGUMENT, "a sparse index is queried by sparseVector")
            query = _check_sparse("query", body.get("sparseVector"))
            sparse_scored = [
                (vector_id, sum(w * stored.sparse.get(i, 0.0) for i, w in query.items()), stored)
                for vector_id, stored in records.items()
                if wanted is None or matches_filter(stored.metadata, wanted)
            ]
            sparse_scored = [item for item in sparse_scored if item[1] > 0]
            sparse_scored.sort(key=lambda item: (-item[1], item[0]))
            return {"matches": [
                {"id": vector_id, "score": score, "values": [],
                 **({"metadata": stored.metadata}
                    if body.get("includeMetadata") and stored.metadata else {})}
                for vector_id, score, stored in sparse_scored[:top_k]],
                "namespace": namespace, "usage": {"readUnits": 5}}
        if ("vector" in body) == ("id" in body):
            raise _Reject(400, INVALID_ARGUMENT, "exactly one of vector or id is required")
        if "id" in body:
            anchor = records.get(str(body["id"]))
            if anchor is None:
                return {"matches": [], "namespace": namespace, "usage": {"readUnits": 1}}
            vector = anchor.values
        else:
            vector = self._check_values("query", body.get("vector"))
        scored = [
            (vector_id, _cosine(vector, stored.values), stored)
            for vector_id, stored in records.items()
            if wanted is None or matches_filter(stored.metadata, wanted)
        ]
        scored.sort(key=lambda item: (-item[1], item[0]))
        matches = []
        for vector_id, score, stored in scored[:top_k]:
            match: dict[str, Any] = {"id": vector_id, "score": score,
                                     "values": stored.values if body.get("includeValues") else []}
            if body.get("includeMetadata") and stored.metadata:
                match["metadata"] = stored.metadata
            matches.append(match)
        return {"matches": matches, "namespace": namespace, "usage": {"readUnits": 5}}

    def fetch(self, ids: list[str], namespace: str) -> dict[str, Any]:
        if not ids:
            raise _Reject(400, INVALID_ARGUMENT, "ids must not be empty")
        if len(ids) > MAX_IDS_PER_REQUEST:
            raise _Reject(400, INVALID_ARGUMENT,
                          f"Request contains {len(ids)} ids, which exceeds the limit of "
                          f"{MAX_IDS_PER_REQUEST} ids per fetch request")
        with self._lock:
            records = self._namespaces.get(namespace, {})
            found = {
                vector_id: {"id": vector_id, "values": records[vector_id].values,
                            **({"metadata": records[vector_id].metadata}
                               if records[vector_id].metadata else {})}
                for vector_id in ids if vector_id in records
            }
        return {"vectors": found, "namespace": namespace, "usage": {"readUnits": 1}}

    def delete(self, body: Mapping[str, Any]) -> dict[str, Any]:
        namespace = _namespace(body)
        with self._lock:
            exists = namespace in self._namespaces
        if not exists:
            # What serverless indexes answer for a namespace that was never written.
            raise _Reject(404, NOT_FOUND, "Namespace not found")
        selectors = [key for key in ("ids", "filter", "deleteAll") if body.get(key) is not None]
        if len(selectors) != 1:
            raise _Reject(400, INVALID_ARGUMENT,
                          "exactly one of ids, filter or deleteAll is required")
        if "ids" in selectors:
            ids = body["ids"]
            if not isinstance(ids, list) or not ids:
                raise _Reject(400, INVALID_ARGUMENT, "ids must be a non-empty array")
            if len(ids) > MAX_IDS_PER_REQUEST:
                raise _Reject(400, INVALID_ARGUMENT,
                              f"Request contains {len(ids)} ids, which exceeds the limit of "
                              f"{MAX_IDS_PER_REQUEST} ids per delete request")
            with self._lock:
                records = self._namespaces.get(namespace, {})
                for vector_id in ids:
                    records.pop(vector_id, None)
        elif "filter" in selectors:
            if not self.delete_by_filter:
                raise _Reject(400, INVALID_ARGUMENT, DELETE_BY_FILTER_UNSUPPORTED)
            expression = body["filter"]
            if not expression:
                raise _Reject(400, INVALID_ARGUMENT,
                              "Delete with empty metadata filter is not allowed")
            wanted = _validated_filter(expression)
            with self._lock:
                records = self._namespaces.get(namespace, {})
                for vector_id in [i for i, s in records.items()
                                  if matches_filter(s.metadata, wanted)]:
                    del records[vector_id]
        else:
            with self._lock:
                self._namespaces.pop(namespace, None)
        return {}

    def describe_index_stats(self, body: Mapping[str, Any]) -> dict[str, Any]:
        if body.get("filter"):
            raise _Reject(400, INVALID_ARGUMENT,
                          "describe_index_stats does not support a metadata filter on "
                          "serverless indexes")
        counts = self.namespaces()
        return {
            "namespaces": {name: {"vectorCount": count} for name, count in counts.items()},
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(counts.values()),
            "metric": "cosine",
            "vectorType": "dense",
        }

    def list_ids(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        namespace = query.get("namespace", [""])[0] or DEFAULT_NAMESPACE
        prefix = query.get("prefix", [""])[0]
        raw_limit = query.get("limit", [str(MAX_LIST_LIMIT)])[0]
        try:
            limit = int(raw_limit)
        except ValueError:
            raise _Reject(400, INVALID_ARGUMENT,
                          f"limit must be an integer, got {raw_limit!r}") from None
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise _Reject(400, INVALID_ARGUMENT,
                          f"limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}")
        after = ""
        token = query.get("paginationToken", [None])[0]
        if token:
            try:
                after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
            except (ValueError, KeyError, TypeError):
                raise _Reject(400, INVALID_ARGUMENT, "invalid pagination token") from None
        with self._lock:
            ids = sorted(i for i in self._namespaces.get(namespace, {})
                         if i.startswith(prefix) and i > after)
        page = ids[:limit]
        answer: dict[str, Any] = {"vectors": [{"id": i} for i in page], "namespace": namespace,
                                  "usage": {"readUnits": 1}}
        if len(ids) > limit:
            answer["pagination"] = {"next": base64.urlsafe_b64encode(
                json.dumps({"after": page[-1]}).encode()).decode()}
        return answer


def _namespace(body: Mapping[str, Any]) -> str:
    namespace = body.get("namespace") or ""
    if not isinstance(namespace, str):
        raise _Reject(400, INVALID_ARGUMENT, "namespace must be a string")
    return namespace or DEFAULT_NAMESPACE


def _error_body(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "details": []}


class _Handler(KeepAliveHandler):
    @property
    def owner(self) -> FakePinecone:
        return self.server.owner  # type: ignore[no-any-return]

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        raw = self.read_body()
        query = parse_qs(parts.query, keep_blank_values=True)
        details: dict[str, Any] = {}
        status, answer, headers = 200, {}, {}
        try:
            answer = self._answer(method, path, raw, query, details)
        except _Reject as reject:
            status, answer, headers = (reject.status, _error_body(reject.code, reject.message),
                                       reject.headers)
        self.owner._record(RecordedRequest(
            method=method, path=path, status=status, body_size=len(raw),
            vector_count=details.get("vector_count", 0), id_count=details.get("id_count", 0),
            namespace=details.get("namespace"),
            api_version=self.headers.get("X-Pinecone-Api-Version"),
            vector_ids=tuple(details.get("vector_ids", ()))))
        self.send_json(status, answer, headers)

    def _answer(self, method: str, path: str, raw: bytes, query: Mapping[str, list[str]],
                details: dict[str, Any]) -> dict[str, Any]:
        owner = self.owner
        body: dict[str, Any] = {}
        if method == "POST":
            try:
                loaded = json.loads(raw or b"{}")
            except ValueError as exc:
                raise _Reject(400, INVALID_ARGUMENT, f"invalid JSON body: {exc}") from exc
            if not isinstance(loaded, dict):
                raise _Reject(400, INVALID_ARGUMENT, "the body must be a JSON object")
            body = loaded
            vectors = body.get("vectors")
            details["vector_count"] = len(vectors) if isinstance(vectors, list) else 0
            details["vector_ids"] = [v["id"] for v in vectors if isinstance(v, dict)
                                     and isinstance(v.get("id"), str)] \
                if isinstance(vectors, list) else []
            ids = body.get("ids")
            details["id_count"] = len(ids) if isinstance(ids, list) else 0
            details["namespace"] = body.get("namespace")
        else:
            details["id_count"] = len(query.get("ids", []))
            details["namespace"] = query.get("namespace", [None])[0]
        if self.headers.get("Api-Key") != owner.api_key:
            raise _Reject(401, UNAUTHENTICATED, "Invalid API Key")
        failure, delay = owner._injected(path)
        if delay:
            time.sleep(delay)
        if failure is not None:
            headers = {} if failure.retry_after is None else {"Retry-After": failure.retry_after}
            code, message = {
                429: (RESOURCE_EXHAUSTED,
                      "Request failed. You've reached the rate limit of your index."),
                400: (INVALID_ARGUMENT, "Invalid request (injected by the test)"),
                401: (UNAUTHENTICATED, "Invalid API Key (injected by the test)"),
                404: (NOT_FOUND, "Not found (injected by the test)"),
            }.get(failure.status, (INTERNAL, "Internal error (injected by the test)"))
            raise _Reject(failure.status, code, message, headers)
        if len(raw) > MAX_REQUEST_BYTES:
            raise _Reject(400, INVALID_ARGUMENT,
                          f"Request size {len(raw)} bytes exceeds the maximum supported size of "
                          f"{MAX_REQUEST_BYTES} bytes")
        route = (method, path)
        if route == ("POST", "/vectors/upsert"):
            return owner.upsert(body)
        if route == ("POST", "/query"):
            return owner.query(body)
        if route == ("GET", "/vectors/fetch"):
            namespace = query.get("namespace", [""])[0] or DEFAULT_NAMESPACE
            return owner.fetch(query.get("ids", []), namespace)
        if route == ("POST", "/vectors/delete"):
            return owner.delete(body)
        if route == ("POST", "/describe_index_stats"):
            return owner.describe_index_stats(body)
        if route == ("GET", "/vectors/list"):
            return owner.list_ids(query)
        raise _Reject(404, NOT_FOUND, f"{method} {path} is not a data-plane path")


def reset_sdk_retry_budget() -> None:
    """Refill the ``pinecone`` SDK's process-wide retry budget (best effort, test use only).

    The SDK 10.x keeps one retry token bucket per bare host name for the whole process: after
    a few dozen retryable answers from ``127.0.0.1`` it stops retrying there until hundreds of
    requests have succeeded. Tests that inject 429 storms would otherwise change how later
    tests behave, so a fresh (or reset) fake server refills it.
    """
    try:
        from pinecone._internal.http_client import get_budget_registry
    except ImportError:
        return
    get_budget_registry()._reset()


FakePinecone.handler = _Handler
