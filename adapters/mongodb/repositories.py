"""MongoDB adapters of the JobRepository and DocumentRepository ports, on pymongo.

Jobs live in ``ingestion_jobs`` (``_id`` is the job id), documents in ``documents``. The
MongoClient is built on first use and rebuilt in a forked child (pymongo must not cross a
fork); indexes are created once per process. Every call is bounded by ``timeout_ms``. pymongo
errors are translated into :class:`TransientError` / :class:`PermanentError` by
:func:`translate_error`, and records are converted to domain models here: no ObjectId or other
pymongo type leaves this module, and datetimes come back timezone-aware in UTC (MongoDB keeps
milliseconds, so stored datetimes are truncated to the millisecond).
"""

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any, ClassVar

from bson.errors import BSONError  # not a PyMongoError subclass
from pydantic import BaseModel, TypeAdapter, ValidationError
from pymongo import ASCENDING, DESCENDING, IndexModel, MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

from adapters.per_process import PerProcess
from domain.documents import Document, content_key, derived_sha, version_id
from domain.errors import ConversaError, NotFoundError, PermanentError, TransientError
from domain.job import IngestionJob, StageError, check_transition_fields, utcnow
from domain.status import JobStatus, can_transition, is_redrive_target
from domain.usage import COUNTS, Usage, UsageDay, sum_by_day

JOBS_COLLECTION = "ingestion_jobs"
DOCUMENTS_COLLECTION = "documents"
DEFAULT_TIMEOUT_MS = 5000
DEFAULT_WRITE_CONCERN_W: int | str = "majority"
DEFAULT_JOURNAL = True
APP_NAME = "conversa-ingest"
#: Ids per query of ``get_many``. Small: SecantusDB's time for an ``_id`` ``$in`` grows with
#: the square of its list (measured over 4,000 jobs: 25 ids 2.8 ms, 50 ids 7 ms, 100 ids
#: 20 ms, 200 ids 93 ms, 1,000 ids 1.4 s, past the 5 s timeout on a loaded machine).
GET_MANY_PAGE = 50

MongoDoc = dict[str, Any]

_TRANSIENT_TYPES: tuple[type[PyMongoError], ...] = (
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
    ServerSelectionTimeoutError,
    ExecutionTimeout,
    WTimeoutError,
)
#: Server error codes that mean "try again": network, elections, shutdown, time limits,
#: write conflicts.
_TRANSIENT_CODES = frozenset({
    6, 7, 50, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
})
_TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError")

_TERMINAL = [status.value for status in JobStatus if status.is_terminal]
_NON_TERMINAL = [status.value for status in JobStatus if not status.is_terminal]
#: ``transition`` sets these itself; a caller passing them has a bug.
_STAGE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# -- errors -----------------------------------------------------------------------------------

def server_label(url: str) -> str:
    """The hosts of a MongoDB URL, without scheme, credentials, database or options."""
    rest = url.split("://", 1)[-1]
    hosts = rest.split("/", 1)[0].split("?", 1)[0]
    return hosts.rsplit("@", 1)[-1] or "MongoDB"


def _secrets(url: str) -> list[str]:
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    if "@" not in rest:
        return []
    userinfo = rest.rsplit("@", 1)[0]
    return [part for part in (userinfo, *userinfo.split(":", 1)) if part]


def translate_error(exc: BaseException, url: str, action: str) -> ConversaError:
    """The domain error for a pymongo (or bson) error: transient if trying again may help.

    The message names the server and the action, never the URL's credentials.
    """
    if isinstance(exc, ConversaError):
        return exc
    server = server_label(url)
    detail = str(exc).splitlines()[0] if str(exc) else ""
    for secret in sorted(_secrets(url), key=len, reverse=True):
        detail = detail.replace(secret, "***")
    if len(detail) > 240:
        detail = detail[:240] + "..."
    message = f"MongoDB at {server}: {action} failed: {type(exc).__name__}"
    message = f"{message}: {detail}" if detail else message
    if isinstance(exc, PyMongoError) and _is_transient(exc):
        return TransientError(message)
    return PermanentError(message)


def _is_transient(exc: PyMongoError) -> bool:
    if isinstance(exc, _TRANSIENT_TYPES) or exc.timeout:
        return True
    if any(exc.has_error_label(label) for label in _TRANSIENT_LABELS):
        return True
    return isinstance(exc, OperationFailure) and exc.code in _TRANSIENT_CODES


# -- conversion -------------------------------------------------------------------------------

def _utc_ms(value: datetime) -> datetime:
    """A datetime as MongoDB will give it back: aware, UTC, whole milliseconds."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.replace(microsecond=aware.microsecond // 1000 * 1000)


def _job_query(tenant: str | None, status: JobStatus | None) -> MongoDoc:
    """The filter on a job's tenant and status, each left out when None."""
    query: MongoDoc = {}
    if tenant is not None:
        query["tenant"] = tenant
    if status is not None:
        query["status"] = status.value
    return query

def _to_bson(value: Any) -> Any:
    """Plain BSON-ready values: enums to their value, models to dicts, datetimes to UTC ms."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return _to_bson(value.model_dump(mode="python"))
    if isinstance(value, datetime):
        return _utc_ms(value)
    if isinstance(value, Mapping):
        return {str(key): _to_bson(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_bson(item) for item in value]
    return value


def _job_to_doc(job: IngestionJob) -> MongoDoc:
    data: MongoDoc = _to_bson(job.model_dump(mode="python"))
    data["_id"] = data.pop("job_id")
    return data


def _job_from_doc(doc: Mapping[str, Any]) -> IngestionJob:
    data = dict(doc)
    data["job_id"] = data.pop("_id")
    try:
        return IngestionJob.model_validate(data)
    except ValidationError as exc:
        raise PermanentError(f"stored job {data['job_id']!r} is not valid: {exc}") from None


def _document_to_doc(document: Document) -> MongoDoc:
    data: MongoDoc = _to_bson(document.model_dump(mode="python"))
    return data


def _document_from_doc(doc: Mapping[str, Any]) -> Document:
    data = {key: value for key, value in doc.items() if key != "_id"}
    if "served" not in data:
        data = _from_flat_record(data)
    try:
        return Document.model_validate(data)
    except ValidationError as exc:
        raise PermanentError(
            f"stored document {data.get('document_id')!r} is not valid: {exc}") from None


#: Fields of the record's shape before served versions were kept apart.
_FLAT_FIELDS = ("sha256", "object_key", "job_id", "size", "content_type", "chunk_count",
                "chunks_key", "keywords")


def _from_flat_record(data: MongoDoc) -> MongoDoc:
    """A record of the earlier flat shape read as the version model: its searchable version
    was the content its ``chunks_key`` was derived from (the flat ``sha256`` may be a later
    job's), indexed under ``version_id(document id, chunks_key)``."""
    flat = {name: data.pop(name, None) for name in _FLAT_FIELDS}
    chunks_key, count = flat["chunks_key"], flat["chunk_count"]
    sha = derived_sha(chunks_key) if isinstance(chunks_key, str) else None
    if sha is None or not isinstance(count, int) or data.get("deleted"):
        return data
    data["served"] = {
        "job_id": flat["job_id"] or "", "created_at": data.get("updated_at"),
        "sha256": sha, "object_key": content_key(str(data.get("tenant")), sha),
        "size": flat["size"] or 0, "source_name": data.get("source_name") or "",
        "content_type": flat["content_type"] or "application/octet-stream",
        "chunks_key": chunks_key, "embeddings_key": "", "chunk_count": count,
        "vector_version": version_id(str(data.get("document_id")), chunks_key),
        "keywords": flat["keywords"] or [],
    }
    return data


def _job_fields(fields: Mapping[str, object]) -> MongoDoc:
    """Validate ``transition`` fields against the job model and make them BSON-ready."""
    return {name: _to_bson(TypeAdapter(Any).dump_python(value, mode="python"))
            for name, value in check_transition_fields(fields).items()}


# -- the connection ---------------------------------------------------------------------------

#: (url, database, collection) whose indexes this process has made sure of.
_indexed: PerProcess[set[tuple[str, str, str]]] = PerProcess(set)


class _MongoCollection:
    """One collection on a lazily built, fork-aware MongoClient."""

    collection_name: ClassVar[str]
    indexes: ClassVar[tuple[IndexModel, ...]]

    def __init__(
        self,
        url: str,
        database: str,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        *,
        write_concern_w: int | str = DEFAULT_WRITE_CONCERN_W,
        journal: bool | None = DEFAULT_JOURNAL,
    ) -> None:
        if timeout_ms <= 0:
            raise ValueError("timeout_ms must be positive")
        self._url = url
        self._database = database
        self._timeout_ms = timeout_ms
        # "1" from a settings string means one node; a non-numeric string is a mode/tag name.
        self._write_concern_w: int | str = (
            int(write_concern_w) if isinstance(write_concern_w, str)
            and write_concern_w.isdigit() else write_concern_w)
        self._journal = journal
        # A client inherited across fork is dropped, never used nor closed in the child.
        self._client: PerProcess[MongoClient[MongoDoc]] = PerProcess(self._new_client)

    @property
    def server(self) -> str:
        return server_label(self._url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.server}, {self._database!r})"

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except ConversaError:
            raise
        except (PyMongoError, BSONError) as exc:
            raise translate_error(exc, self._url, action) from exc

    def _new_client(self) -> MongoClient[MongoDoc]:
        options: dict[str, Any] = {
            "serverSelectionTimeoutMS": self._timeout_ms,
            "connectTimeoutMS": self._timeout_ms,
            "socketTimeoutMS": self._timeout_ms,
            "timeoutMS": self._timeout_ms,
            "retryWrites": True,
            "retryReads": True,
            "tz_aware": True,
            "tzinfo": UTC,
            "appname": APP_NAME,
            "w": self._write_concern_w,
        }
        if self._journal is not None:
            options["journal"] = self._journal
        try:
            client: MongoClient[MongoDoc] = MongoClient(self._url, **options)
        except (PyMongoError, ValueError, TypeError) as exc:
            raise translate_error(exc, self._url, "connecting") from exc
        return client

    def _collection(self) -> Collection[MongoDoc]:
        collection = self._client.get()[self._database][self.collection_name]
        self._make_indexes(collection, self.indexes)
        return collection

    def _make_indexes(self, collection: Collection[MongoDoc],
                      indexes: Sequence[IndexModel]) -> None:
        """Create ``indexes`` on ``collection`` unless this process did already."""
        key, indexed = (self._url, self._database, collection.name), _indexed.get()
        if key not in indexed:
            with self._errors("creating indexes"):
                collection.create_indexes(list(indexes))
            indexed.add(key)

    def close(self) -> None:
        """Close this process's client (the next call opens a new one)."""
        client = self._client.discard()
        if client is not None:
            client.close()


# -- jobs -------------------------------------------------------------------------------------

class MongoJobRepository(_MongoCollection):
    """The JobRepository port on MongoDB: compare-and-set by an update filtered on the
    expected status."""

    collection_name = JOBS_COLLECTION
    indexes = (
        # The newest first, ties by id: list_jobs, list_jobs_page, usage_by_day (a deployment
        # made before it keeps its old tenant_created_at index too, unused).
        IndexModel([("tenant", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
                   name="tenant_created_at_id"),
        # list_jobs and list_jobs_page with a status (redrive, re-embed, check, the API).
        IndexModel([("tenant", ASCENDING), ("status", ASCENDING), ("created_at", DESCENDING),
                    ("_id", DESCENDING)], name="tenant_status_created_at_id"),
        IndexModel([("status", ASCENDING), ("updated_at", ASCENDING)],
                   name="status_updated_at"),
    )

    def create(self, job: IngestionJob) -> IngestionJob:
        doc = _job_to_doc(job)
        collection = self._collection()
        with self._errors(f"creating job {job.job_id}"):
            try:
                collection.insert_one(dict(doc))
            except DuplicateKeyError:
                stored = collection.find_one({"_id": job.job_id})
                if stored is None:  # deleted between the two calls: nothing sensible to return
                    raise TransientError(f"job {job.job_id} vanished while being created"
                                         ) from None
                return _job_from_doc(stored)
        return _job_from_doc(doc)

    def get(self, job_id: str) -> IngestionJob:
        collection = self._collection()
        with self._errors(f"reading job {job_id}"):
            doc = collection.find_one({"_id": job_id})
        if doc is None:
            raise NotFoundError(f"no job {job_id}")
        return _job_from_doc(doc)

    def get_many(self, job_ids: Sequence[str]) -> list[IngestionJob]:
        wanted = list(dict.fromkeys(job_ids))
        found: dict[str, IngestionJob] = {}
        collection = self._collection()
        for first in range(0, len(wanted), GET_MANY_PAGE):
            page = wanted[first:first + GET_MANY_PAGE]
            with self._errors(f"reading {len(page)} jobs"):
                docs = list(collection.find({"_id": {"$in": page}}))
            found.update((str(doc["_id"]), _job_from_doc(doc)) for doc in docs)
        return [found[job_id] for job_id in wanted if job_id in found]

    def _update(self, action: str, query: MongoDoc, update: MongoDoc) -> MongoDoc | None:
        """Apply ``update`` to the job ``query`` matches (it names the ``_id``) atomically,
        then read the job back; None when nothing matched.

        Not ``find_one_and_update``: SecantusDB answers that by scanning the collection (its
        cost grew with the number of jobs, ~9 ms per 1,000, in ``bench/round_trips.py``),
        where an update and a find by ``_id`` use the index. The filter still makes the write
        a compare-and-set; only the document read back may already carry a later writer's
        change as well, which callers take as the job's state at or after their move."""
        collection = self._collection()
        with self._errors(action):
            if collection.update_one(query, update).matched_count == 0:
                return None
            result: MongoDoc | None = collection.find_one({"_id": query["_id"]})
        return result

    def transition(
        self, job_id: str, expected: JobStatus, new: JobStatus, fields: Mapping[str, object]
    ) -> IngestionJob | None:
        if not can_transition(expected, new):
            raise PermanentError(f"illegal transition {expected} -> {new}")
        values = _job_fields(fields)
        now = _utc_ms(utcnow())
        doc = self._update(
            f"moving job {job_id} from {expected} to {new}",
            {"_id": job_id, "status": expected.value},
            {"$set": {**values, "status": new.value, "updated_at": now,
                      f"stage_times.{new.value}": now}},
        )
        return None if doc is None else _job_from_doc(doc)

    def fail(self, job_id: str, error: StageError) -> IngestionJob | None:
        now = _utc_ms(utcnow())
        doc = self._update(
            f"failing job {job_id}",
            {"_id": job_id, "status": {"$nin": _TERMINAL}},
            {"$set": {"status": JobStatus.FAILED.value, "error": _to_bson(error),
                      "updated_at": now, f"stage_times.{JobStatus.FAILED.value}": now}},
        )
        return None if doc is None else _job_from_doc(doc)

    def redrive(self, job_id: str, status: JobStatus) -> IngestionJob | None:
        if not is_redrive_target(status):
            raise PermanentError(f"a failed job cannot be re-driven to {status}")
        doc = self._update(
            f"re-driving job {job_id}",
            {"_id": job_id, "status": JobStatus.FAILED.value},
            {"$set": {"status": status.value, "error": None, "updated_at": _utc_ms(utcnow())}},
        )
        return None if doc is None else _job_from_doc(doc)

    def count_attempt(self, job_id: str, stage: str) -> int:
        name = _stage_name(stage)
        collection = self._collection()
        with self._errors(f"counting an attempt of job {job_id}"):
            # The count after this very increment: only find_one_and_update gives it (a scan
            # on SecantusDB; the stages use begin_attempt).
            doc = collection.find_one_and_update(
                {"_id": job_id}, _attempt_update(name),
                projection={"attempts": True}, return_document=ReturnDocument.AFTER)
        if doc is None:
            raise NotFoundError(f"no job {job_id}")
        return int(doc["attempts"][name])

    def begin_attempt(self, job_id: str, stage: str) -> IngestionJob:
        doc = self._update(f"counting an attempt of job {job_id}", {"_id": job_id},
                           _attempt_update(stage))
        if doc is None:
            raise NotFoundError(f"no job {job_id}")
        return _job_from_doc(doc)

    def list_jobs(
        self, *, tenant: str | None = None, status: JobStatus | None = None, limit: int = 100
    ) -> list[IngestionJob]:
        if limit <= 0:
            return []
        return self._newest_jobs(_job_query(tenant, status), limit)

    def list_jobs_page(
        self,
        *,
        tenant: str,
        status: JobStatus | None = None,
        limit: int = 50,
        after: tuple[datetime, str] | None = None,
    ) -> list[IngestionJob]:
        """The JobPages port: keyset pagination on (created_at, _id), both descending."""
        if limit <= 0:
            return []
        query = _job_query(tenant, status)
        if after is not None:
            created_at, job_id = _utc_ms(after[0]), after[1]
            query["$or"] = [{"created_at": {"$lt": created_at}},
                            {"created_at": created_at, "_id": {"$lt": job_id}}]
        return self._newest_jobs(query, limit)

    def _newest_jobs(self, query: MongoDoc, limit: int) -> list[IngestionJob]:
        """At most ``limit`` jobs matching ``query``, newest first (created_at, then _id)."""
        collection = self._collection()
        with self._errors("listing jobs"):
            docs = list(collection.find(query)
                        .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
                        .limit(limit))
        return [_job_from_doc(doc) for doc in docs]

    def list_stale(self, *, older_than_seconds: float, limit: int = 500) -> list[IngestionJob]:
        """Non-terminal jobs not updated for ``older_than_seconds``, oldest first."""
        if limit <= 0:
            return []
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        collection = self._collection()
        with self._errors("listing stale jobs"):
            docs = list(collection.find({"status": {"$in": _NON_TERMINAL},
                                         "updated_at": {"$lt": cutoff}})
                        .sort([("updated_at", ASCENDING), ("_id", ASCENDING)])
                        .limit(limit))
        return [_job_from_doc(doc) for doc in docs]

    def count_in_flight(self, tenant: str, at_most: int) -> int:
        """On the ``tenant_status_created_at_id`` index (tenant equal, status in the
        non-terminal ones): a find of the tenant's newest jobs sorted by creation is a
        collection scan and sort on SecantusDB (~70 ms per 1,000 jobs)."""
        if at_most <= 0:
            return 0
        collection = self._collection()
        with self._errors(f"counting the jobs in flight of tenant {tenant}"):
            return len(list(collection.find(
                {"status": {"$in": _NON_TERMINAL}, "tenant": tenant}, {"_id": True}
            ).limit(at_most)))

    def usage_by_day(self, *, tenant: str | None = None,
                     since: date | None = None) -> list[UsageDay]:
        """The UsageLedger port: one aggregation, grouped by tenant, day of creation (UTC)
        and the models paid for (on the ``tenant_created_at_id`` index when a tenant is given);
        jobs from before usage was recorded count as free."""
        query: MongoDoc = {}
        if tenant is not None:
            query["tenant"] = tenant
        if since is not None:
            query["created_at"] = {"$gte": datetime(since.year, since.month, since.day,
                                                    tzinfo=UTC)}
        group: MongoDoc = {
            "_id": {"tenant": "$tenant",
                    "day": {"$dateToString": {"format": "%Y-%m-%d", "date": "$created_at"}},
                    "embed_model": "$usage.embed_model",
                    "keyword_model": "$usage.keyword_model"},
            "jobs": {"$sum": 1},
            **{name: {"$sum": f"$usage.{name}"} for name in COUNTS},
        }
        collection = self._collection()
        with self._errors("adding up usage"):
            rows = list(collection.aggregate([{"$match": query}, {"$group": group}]))
        return sum_by_day(
            (str(row["_id"]["tenant"]), date.fromisoformat(str(row["_id"]["day"])),
             int(row["jobs"]), Usage(**{name: int(row.get(name) or 0) for name in COUNTS},
                                     embed_model=row["_id"].get("embed_model"),
                                     keyword_model=row["_id"].get("keyword_model")))
            for row in rows)


def _stage_name(stage: str) -> str:
    name = str(stage.value if isinstance(stage, Enum) else stage)
    if not _STAGE_NAME.match(name):
        raise PermanentError(f"bad stage name {name!r}")
    return name


def _attempt_update(stage: str) -> MongoDoc:
    return {"$inc": {f"attempts.{_stage_name(stage)}": 1},
            "$set": {"updated_at": _utc_ms(utcnow())}}


# -- documents --------------------------------------------------------------------------------

class MongoDocumentRepository(_MongoCollection):
    """The DocumentRepository port on MongoDB: one record per (tenant, document id), every
    write a compare-and-set on ``revision`` (a replace filtered on the expected one)."""

    collection_name = DOCUMENTS_COLLECTION
    indexes = (
        IndexModel([("tenant", ASCENDING), ("document_id", ASCENDING)], unique=True,
                   name="tenant_document_id"),
        IndexModel([("tenant", ASCENDING), ("served.sha256", ASCENDING)],
                   name="tenant_served_sha256"),
        IndexModel([("tenant", ASCENDING), ("claims.sha256", ASCENDING)],
                   name="tenant_claims_sha256"),
        IndexModel([("tenant", ASCENDING), ("source", ASCENDING)], name="tenant_source"),
    )

    def get(self, tenant: str, document_id: str) -> Document | None:
        collection = self._collection()
        with self._errors(f"reading document {document_id}"):
            doc = collection.find_one({"tenant": tenant, "document_id": document_id})
        return None if doc is None else _document_from_doc(doc)

    def put(self, document: Document, expected_revision: int | None) -> Document | None:
        revision = (expected_revision or 0) + 1
        doc = _document_to_doc(document.model_copy(update={"revision": revision}))
        key = {"tenant": document.tenant, "document_id": document.document_id}
        collection = self._collection()
        with self._errors(f"writing document {document.document_id}"):
            if expected_revision is None:
                try:
                    collection.insert_one(dict(doc))
                except DuplicateKeyError:
                    return None
                return _document_from_doc(doc)
            # A record of the earlier shape has no revision: it counts as revision 0.
            expected: Any = expected_revision or {"$in": [0, None]}
            # By ``_id`` and revision, with replace_one: SecantusDB scans the collection for
            # find_one_and_replace, and for a filter of the (tenant, document id) index plus
            # the revision (measured: ~40 ms per 1,000 records); ``_id`` lookups stay flat.
            # The record after is the one written.
            found = collection.find_one(key, {"_id": True})
            if found is None:
                return None
            replaced = collection.replace_one({"_id": found["_id"], "revision": expected}, doc)
        return None if replaced.matched_count == 0 else _document_from_doc(doc)

    def documents_under(self, tenant: str, prefix: str) -> Iterator[Document]:
        # A range, not a regex: it uses the (tenant, source) index and needs no escaping.
        query: MongoDoc = {"tenant": tenant, "source": {"$gte": prefix}}
        if prefix:
            query["source"]["$lt"] = prefix + "\U0010ffff"
        collection = self._collection()
        with self._errors("listing documents by source"):
            cursor = collection.find(query).sort("source", ASCENDING).batch_size(500)
            for doc in cursor:
                yield _document_from_doc(doc)

    def list_documents_page(self, *, tenant: str, after: str | None = None, limit: int = 100,
                            updated_since: datetime | None = None) -> list[Document]:
        if limit < 1:
            return []
        query: MongoDoc = {"tenant": tenant}
        if after is not None:
            query["document_id"] = {"$gt": after}
        if updated_since is not None:
            query["updated_at"] = {"$gte": _utc_ms(updated_since)}
        collection = self._collection()
        with self._errors("listing documents"):
            docs = list(collection.find(query).sort("document_id", ASCENDING).limit(limit))
        return [_document_from_doc(doc) for doc in docs]

    def tenants(self) -> list[str]:
        collection = self._collection()
        with self._errors("listing tenants"):
            return sorted(str(t) for t in collection.distinct("tenant"))

    def using_content(self, tenant: str, sha256: str) -> list[Document]:
        """Two finds, one per index, instead of one ``$or``: SecantusDB answers an ``$or``
        by scanning the collection, which made every released claim cost time in proportion
        to the tenant's documents."""
        collection = self._collection()
        found: dict[Any, MongoDoc] = {}
        with self._errors("finding documents by content"):
            for field in ("served.sha256", "claims.sha256"):
                for doc in collection.find({"tenant": tenant, field: sha256}):
                    found.setdefault(doc["_id"], doc)
        return [_document_from_doc(doc) for doc in found.values()]
