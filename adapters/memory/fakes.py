"""In-memory adapters of every port, for unit tests and as the reference of each contract."""

import io
import math
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from adapters import metering
from adapters.ports import ListedObject, MetadataFilter, ObjectInfo
from domain import lexical
from domain.documents import Document, VectorHit, VectorRecord
from domain.errors import NotFoundError, PermanentError
from domain.filters import matches
from domain.indexes import IndexRoute, ReindexRun
from domain.job import IngestionJob, StageError, check_transition_fields, utcnow
from domain.status import JobStatus, can_transition, is_redrive_target
from domain.usage import Usage, UsageDay, sum_by_day


class MemoryObjectStore:
    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, dict[str, str]]] = {}
        self._written: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def upload_file(self, key: str, path: Path, metadata: Mapping[str, str]) -> ObjectInfo:
        return self.put_bytes(key, path.read_bytes(), metadata)

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str]) -> ObjectInfo:
        with self._lock:
            self._objects[key] = (bytes(data), dict(metadata))
            self._written[key] = utcnow()
        return ObjectInfo(key=key, size=len(data), metadata=dict(metadata))

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.get_bytes(key))

    def get_bytes(self, key: str) -> bytes:
        with self._lock:
            if key not in self._objects:
                raise NotFoundError(f"no object {key}")
            return self._objects[key][0]

    def head(self, key: str) -> ObjectInfo | None:
        with self._lock:
            if key not in self._objects:
                return None
            data, metadata = self._objects[key]
            return ObjectInfo(key=key, size=len(data), metadata=dict(metadata))

    def delete_file(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def list_keys(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        with self._lock:
            listed = [ListedObject(key=key, size=len(data), modified=self._written[key])
                      for key, (data, _) in self._objects.items() if key.startswith(prefix)]
        yield from listed


class MemoryJobRepository:
    def __init__(self) -> None:
        self._jobs: dict[str, IngestionJob] = {}
        self._lock = threading.Lock()

    def create(self, job: IngestionJob) -> IngestionJob:
        with self._lock:
            return self._jobs.setdefault(job.job_id, job)

    def get(self, job_id: str) -> IngestionJob:
        with self._lock:
            if job_id not in self._jobs:
                raise NotFoundError(f"no job {job_id}")
            return self._jobs[job_id]

    def get_many(self, job_ids: Sequence[str]) -> list[IngestionJob]:
        with self._lock:
            return [self._jobs[i] for i in dict.fromkeys(job_ids) if i in self._jobs]

    def _update(self, job: IngestionJob, changes: dict[str, object]) -> IngestionJob:
        now = utcnow()
        updated = job.model_copy(update={**changes, "updated_at": now})
        self._jobs[job.job_id] = IngestionJob.model_validate(updated.model_dump())
        return self._jobs[job.job_id]

    def transition(
        self, job_id: str, expected: JobStatus, new: JobStatus, fields: Mapping[str, object]
    ) -> IngestionJob | None:
        if not can_transition(expected, new):
            raise PermanentError(f"illegal transition {expected} -> {new}")
        fields = check_transition_fields(fields)
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status is not expected:
                return None
            times = {**job.stage_times, new.value: utcnow()}
            return self._update(job, {**fields, "status": new, "stage_times": times})

    def fail(self, job_id: str, error: StageError) -> IngestionJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status.is_terminal:
                return None
            times = {**job.stage_times, JobStatus.FAILED.value: utcnow()}
            return self._update(job, {"status": JobStatus.FAILED, "error": error,
                                      "stage_times": times})

    def redrive(self, job_id: str, status: JobStatus) -> IngestionJob | None:
        if not is_redrive_target(status):
            raise PermanentError(f"a failed job cannot be re-driven to {status}")
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status is not JobStatus.FAILED:
                return None
            return self._update(job, {"status": status, "error": None})

    def count_attempt(self, job_id: str, stage: str) -> int:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFoundError(f"no job {job_id}")
            attempts = {**job.attempts, stage: job.attempts.get(stage, 0) + 1}
            self._update(job, {"attempts": attempts})
            return attempts[stage]

    def begin_attempt(self, job_id: str, stage: str) -> IngestionJob:
        self.count_attempt(job_id, stage)
        return self.get(job_id)

    def list_jobs(
        self, *, tenant: str | None = None, status: JobStatus | None = None, limit: int = 100
    ) -> list[IngestionJob]:
        with self._lock:
            jobs = [
                job for job in self._jobs.values()
                if (tenant is None or job.tenant == tenant)
                and (status is None or job.status is status)
            ]
        jobs.sort(key=lambda job: (job.created_at, job.job_id), reverse=True)
        return jobs[:max(limit, 0)]

    def count_in_flight(self, tenant: str, at_most: int) -> int:
        with self._lock:
            count = sum(1 for job in self._jobs.values()
                        if job.tenant == tenant and not job.status.is_terminal)
        return min(count, max(at_most, 0))

    def list_jobs_page(
        self,
        *,
        tenant: str,
        status: JobStatus | None = None,
        limit: int = 50,
        after: tuple[datetime, str] | None = None,
    ) -> list[IngestionJob]:
        jobs = self.list_jobs(tenant=tenant, status=status, limit=len(self._jobs))
        if after is not None:
            jobs = [job for job in jobs if (job.created_at, job.job_id) < after]
        return jobs[:max(limit, 0)]

    def list_stale(self, *, older_than_seconds: float, limit: int = 500) -> list[IngestionJob]:
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        with self._lock:
            jobs = [job for job in self._jobs.values()
                    if not job.status.is_terminal and job.updated_at < cutoff]
        jobs.sort(key=lambda job: job.updated_at)
        return jobs[:max(limit, 0)]

    def usage_by_day(self, *, tenant: str | None = None,
                     since: date | None = None) -> list[UsageDay]:
        """The UsageLedger port."""
        with self._lock:
            jobs = list(self._jobs.values())
        return sum_by_day(
            (job.tenant, job.created_at.astimezone(UTC).date(), 1, job.usage) for job in jobs
            if (tenant is None or job.tenant == tenant)
            and (since is None or job.created_at.astimezone(UTC).date() >= since))


class MemoryDocumentRepository:
    def __init__(self) -> None:
        self._documents: dict[tuple[str, str], Document] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str, document_id: str) -> Document | None:
        with self._lock:
            return self._documents.get((tenant, document_id))

    def put(self, document: Document, expected_revision: int | None) -> Document | None:
        key = (document.tenant, document.document_id)
        with self._lock:
            stored = self._documents.get(key)
            if (stored.revision if stored is not None else None) != expected_revision:
                return None
            written = document.model_copy(update={"revision": (expected_revision or 0) + 1})
            self._documents[key] = Document.model_validate(written.model_dump())
            return self._documents[key]

    def using_content(self, tenant: str, sha256: str) -> list[Document]:
        with self._lock:
            return [d for (t, _), d in self._documents.items() if t == tenant and (
                (d.served is not None and d.served.sha256 == sha256)
                or any(claim.sha256 == sha256 for claim in d.claims))]

    def list_documents(self) -> list[Document]:
        with self._lock:
            return list(self._documents.values())

    def documents_under(self, tenant: str, prefix: str) -> Iterator[Document]:
        with self._lock:
            found = [d for (t, _), d in self._documents.items()
                     if t == tenant and d.source.startswith(prefix)]
        yield from sorted(found, key=lambda d: d.source)

    def list_documents_page(self, *, tenant: str, after: str | None = None, limit: int = 100,
                            updated_since: datetime | None = None) -> list[Document]:
        with self._lock:
            found = sorted((d for (t, i), d in self._documents.items() if t == tenant
                            and (after is None or i > after)
                            and (updated_since is None or d.updated_at >= updated_since)),
                           key=lambda d: d.document_id)
        return found[:max(limit, 0)]

    def tenants(self) -> list[str]:
        with self._lock:
            return sorted({t for t, _ in self._documents})


class MemoryIndexRegistry:
    def __init__(self) -> None:
        self._routes: dict[str, IndexRoute] = {}
        self._runs: dict[str, ReindexRun] = {}
        self._lock = threading.Lock()

    def get_route(self, tenant: str) -> IndexRoute | None:
        with self._lock:
            return self._routes.get(tenant)

    def put_route(self, route: IndexRoute, expected_revision: int | None) -> IndexRoute | None:
        with self._lock:
            stored = self._routes.get(route.tenant)
            if (stored.revision if stored is not None else None) != expected_revision:
                return None
            self._routes[route.tenant] = route.model_copy(
                update={"revision": (expected_revision or 0) + 1})
            return self._routes[route.tenant]

    def get_run(self, tenant: str) -> ReindexRun | None:
        with self._lock:
            return self._runs.get(tenant)

    def save_run(self, run: ReindexRun) -> None:
        with self._lock:
            self._runs[run.tenant] = run


class MemorySearchMetrics:
    """Counts skipped search candidates by reason, in this process."""

    def __init__(self) -> None:
        self.skipped: dict[str, int] = {}
        self._lock = threading.Lock()

    def skipped_candidate(self, reason: str) -> None:
        with self._lock:
            self.skipped[reason] = self.skipped.get(reason, 0) + 1


class MemoryUsageMetrics:
    """Per-tenant usage counts (``UsageMetrics``), in this process."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def add(self, tenant: str, usage: Usage) -> None:
        with self._lock:
            for name, value in usage.counts().items():
                self.counts[tenant, name] = self.counts.get((tenant, name), 0) + value


class MemoryVectorIndex:
    def __init__(self) -> None:
        self._namespaces: dict[str, dict[str, VectorRecord]] = {}
        self._lock = threading.Lock()

    def upsert_vector(self, tenant: str, vectors: Sequence[VectorRecord]) -> None:
        with self._lock:
            namespace = self._namespaces.setdefault(tenant, {})
            for record in vectors:
                namespace[record.id] = record

    def semantic_search(
        self,
        tenant: str,
        vector: Sequence[float],
        top_k: int,
        metadata_filter: MetadataFilter | None = None,
    ) -> list[VectorHit]:
        with self._lock:
            records = list(self._namespaces.get(tenant, {}).values())
        hits = [
            VectorHit(id=r.id, score=_cosine(vector, r.values), metadata=r.metadata)
            for r in records if matches(r.metadata, metadata_filter)
        ]
        hits.sort(key=lambda hit: (-hit.score, hit.id))
        return hits[:top_k]

    def keyword_search(
        self,
        tenant: str,
        query: str,
        top_k: int,
        metadata_filter: MetadataFilter | None = None,
    ) -> list[VectorHit]:
        """BM25 over the texts of the tenant's records that pass the filter."""
        wanted = lexical.terms(query)
        with self._lock:
            records = [r for r in self._namespaces.get(tenant, {}).values()
                       if r.text and matches(r.metadata, metadata_filter)]
        bags = [Counter(lexical.terms(r.text)) for r in records]
        scores = lexical.bm25(wanted, bags)
        hits = [VectorHit(id=r.id, score=score, metadata=r.metadata)
                for r, score in zip(records, scores, strict=True) if score > 0]
        hits.sort(key=lambda hit: (-hit.score, hit.id))
        return hits[:max(top_k, 0)]

    def delete_ids(self, tenant: str, ids: Sequence[str]) -> None:
        with self._lock:
            namespace = self._namespaces.get(tenant, {})
            for vector_id in ids:
                namespace.pop(vector_id, None)

    def delete_document(self, tenant: str, document_id: str) -> None:
        with self._lock:
            namespace = self._namespaces.get(tenant, {})
            for vector_id in [i for i, r in namespace.items()
                              if r.metadata.get("document_id") == document_id]:
                del namespace[vector_id]

    def count(self, tenant: str) -> int:
        with self._lock:
            return len(self._namespaces.get(tenant, {}))

    def list_ids(self, tenant: str, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(i for i in self._namespaces.get(tenant, {}) if i.startswith(prefix))


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class HashEmbedder:
    """A deterministic bag-of-words embedder: texts sharing words get similar vectors.

    A token is a whitespace-separated word; it reads ``max_input_tokens`` of them.
    """

    def __init__(self, dimension: int = 64, max_input_tokens: int = 256) -> None:
        self._dimension = dimension
        self._max_input_tokens = max_input_tokens

    @property
    def max_input_tokens(self) -> int:
        return self._max_input_tokens

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def model_name(self) -> str:
        return f"hash-bow-{self._dimension}"

    def generate_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        import hashlib

        metering.record(embed_requests=1, embed_model=self.model_name, embed_tokens=sum(
            min(self.count_tokens(text), self._max_input_tokens) for text in texts))
        vectors = []
        for text in texts:
            vector = [0.0] * self._dimension
            for word in text.lower().split()[:self._max_input_tokens]:
                digest = hashlib.blake2b(word.strip(".,;:!?\"'()").encode(), digest_size=4)
                vector[int.from_bytes(digest.digest(), "big") % self._dimension] += 1.0
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            vectors.append([v / norm for v in vector])
        return vectors


class FrequencyKeywords:
    """Keywords by word frequency, ignoring short words: a stand-in for YAKE in unit tests."""

    def generate_keywords(self, text: str, max_keywords: int = 10) -> list[str]:
        metering.record(keyword_requests=1, keyword_model="frequency")
        counts: dict[str, int] = {}
        for raw in text.lower().split():
            word = raw.strip(".,;:!?\"'()[]{}#*`")
            if len(word) > 4 and word.isalpha():
                counts[word] = counts.get(word, 0) + 1
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        return ranked[:max_keywords]
