"""The invariant checker of the chaos suite: what a run accepted, against what the stores hold.

A run keeps a :class:`Ledger` of every accepted upload (its job id, tenant, source, content hash
and the marker word its text carries) and every delete. :func:`check` then reads the job and
document records in MongoDB, every key in the object store and every vector of the index (all
directly, not through the pipeline), searches each tenant for every marker through the
pipeline's search, and counts:

- lost: accepted uploads that did not end ``done``, or ``failed`` with a reason; documents
  whose current content has vectors missing, or that a search for their marker does not find.
- duplicated: documents with more than one record or more than one version in the index, job
  records nobody accepted, superseded content still found.
- orphaned: objects no record needs, records whose objects are missing, vectors of no document.
- cross-tenant: vectors or search hits of one tenant's documents in another tenant.
- deleted: deleted documents with a live record, vectors or search hits.

Recovery is the time from the fault (or the job's acceptance, when later) to the job's end; of
a fault that strikes several times, from the last strike before the job's end.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.documents import Document, SearchHit, vector_ids

TERMINAL = ("done", "failed")
#: The marker searches (every marker in every tenant) run this many at a time.
SEARCH_THREADS = 8


@dataclass(frozen=True)
class Upload:
    """One accepted upload: the API answered 202 with the job, or the CLI printed it."""

    tenant: str
    source: str
    document_id: str
    job_id: str
    marker: str | None  # None: content without a marker (a poison file)
    sha256: str
    via: str  # "cli" or "api"
    accepted_at: float  # time.time()


@dataclass(frozen=True)
class Delete:
    tenant: str
    document_id: str
    at: float


@dataclass
class Ledger:
    uploads: list[Upload] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    #: uploads the API refused (tenant, name, status): nothing may be kept of them
    refused: list[tuple[str, str, int]] = field(default_factory=list)
    #: uploads whose answer was lost (the job may exist although nobody saw it accepted)
    unanswered: int = 0
    api_errors: list[str] = field(default_factory=list)

    def latest_by_document(self, tenant: str) -> dict[str, Upload]:
        latest: dict[str, Upload] = {}
        for upload in sorted(self.uploads, key=lambda u: u.accepted_at):
            if upload.tenant == tenant:
                latest[upload.document_id] = upload
        return latest

    def tenants(self) -> list[str]:
        return sorted({u.tenant for u in self.uploads})


@dataclass(frozen=True)
class StoreView:
    """What the stores hold, read directly."""

    jobs: Mapping[str, Mapping[str, Any]]  # job id -> raw job record
    document_rows: Counter[tuple[str, str]]  # (tenant, document id) -> records
    documents: Callable[[str, str], Document | None]
    object_keys: Sequence[str]
    vectors: Mapping[str, Mapping[str, Mapping[str, Any]]]  # namespace -> id -> metadata
    search: Callable[[str, str, int], list[SearchHit]]


@dataclass
class Report:
    scenario: str
    jobs: int = 0
    #: accepted jobs that had not ended when the fault struck
    in_flight: int = 0
    done: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    orphaned: int = 0
    cross_tenant: int = 0
    deleted_found: int = 0
    recovery: list[float] = field(default_factory=list)
    recovery_bound: float | None = None
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, column: str, problem: str) -> None:
        setattr(self, column, getattr(self, column) + 1)
        self.problems.append(f"{column}: {problem}")

    @property
    def recovery_p50(self) -> float | None:
        return statistics.median(self.recovery) if self.recovery else None

    @property
    def recovery_max(self) -> float | None:
        return max(self.recovery) if self.recovery else None

    @property
    def too_slow(self) -> bool:
        worst = self.recovery_max
        return self.recovery_bound is not None and worst is not None \
            and worst > self.recovery_bound

    @property
    def intact(self) -> bool:
        """Nothing lost, doubled, orphaned or leaked, every job ended."""
        return not (self.lost or self.duplicated or self.orphaned or self.cross_tenant
                    or self.deleted_found)

    @property
    def ok(self) -> bool:
        return self.intact and not self.too_slow

    @property
    def verdict(self) -> str:
        """pass; slow (intact, but a job ended past the recovery bound); FAIL."""
        return "pass" if self.ok else "slow" if self.intact else "FAIL"


def check(scenario: str, ledger: Ledger, view: StoreView, *, fault_at: float | None = None,
          strikes: Sequence[float] = (), search_top_k: int = 10) -> Report:
    """``strikes``: when a fault struck more than once (a kill in each stage), every time it
    struck; a job's recovery is counted from the last strike before its end."""
    report = Report(scenario)
    _check_jobs(report, ledger, view, sorted(strikes) or ([fault_at] if fault_at else []))
    expected = _expected_versions(ledger, view)
    _check_documents(report, ledger, view, expected)
    _check_objects(report, ledger, view, expected)
    _check_vectors(report, ledger, view, expected)
    _check_search(report, ledger, view, expected, search_top_k)
    return report


# --- jobs ------------------------------------------------------------------------------------

def _terminal_at(job: Mapping[str, Any]) -> datetime | None:
    times = job.get("stage_times") or {}
    stamp = times.get(job.get("status"))
    return stamp if isinstance(stamp, datetime) else None


def _check_jobs(report: Report, ledger: Ledger, view: StoreView, strikes: Sequence[float]
                ) -> None:
    accepted = {u.job_id for u in ledger.uploads}
    report.jobs = len(accepted)
    for upload in ledger.uploads:
        job = view.jobs.get(upload.job_id)
        if job is None:
            report.add("lost", f"job {upload.job_id} ({upload.tenant} {upload.source}) has no "
                               "record")
            continue
        status = job.get("status")
        if status == "done":
            report.done += 1
        elif status == "failed":
            report.failed += 1
            error = job.get("error") or {}
            if not error.get("message") or not error.get("stage"):
                report.add("lost", f"job {upload.job_id} failed without a reason")
        else:
            report.add("lost", f"job {upload.job_id} ({upload.via}) stuck at {status}, "
                               f"attempts {job.get('attempts')}")
            continue
        ended = _terminal_at(job)
        if ended is not None:
            before = [t for t in strikes if t <= ended.timestamp()] or strikes[:1] or [0.0]
            start = max(upload.accepted_at, before[-1])
            if ended.timestamp() >= start:
                report.recovery.append(ended.timestamp() - start)
    accepted_sources = {(u.tenant, u.source) for u in ledger.uploads}
    extra = [job for job_id, job in view.jobs.items() if job_id not in accepted]
    unexplained = [job for job in extra
                   if (job.get("tenant"), job.get("source")) not in accepted_sources]
    allowed = ledger.unanswered
    for job in extra:
        if job in unexplained or allowed <= 0:
            report.add("duplicated", f"job {job.get('_id')} ({job.get('tenant')} "
                                     f"{job.get('source')}) was never accepted")
        else:
            allowed -= 1
            report.notes.append(f"job {job.get('_id')}: its upload's answer was lost")


# --- what each document should serve ---------------------------------------------------------

@dataclass(frozen=True)
class Expected:
    tenant: str
    document_id: str
    deleted: bool
    serving: Mapping[str, Any] | None  # the job record whose content should be current
    markers: frozenset[str]  # every marker the document's uploads carried
    current_marker: str | None

    @property
    def vector_ids(self) -> set[str]:
        if self.deleted or self.serving is None:
            return set()
        # each job indexes its version under its own id (domain.documents.version_id)
        return set(vector_ids(self.document_id, str(self.serving["_id"]),
                              int(self.serving["chunk_count"])))

    def keys(self) -> set[str]:
        """The objects the current content needs."""
        if self.deleted or self.serving is None:
            return set()
        return {key for key in (self.serving.get("object_key"),
                                self.serving.get("chunks_key"),
                                self.serving.get("embeddings_key")) if key}


def _expected_versions(ledger: Ledger, view: StoreView) -> dict[tuple[str, str], Expected]:
    """What each document should serve: the content of its last done upload. Uploads of one
    document that overlapped in time (the next accepted before the previous ended) may end
    in either order, so any done upload that no later-accepted done upload supersedes may be
    the current one; the record says which, and must name one of them."""
    deleted = {(d.tenant, d.document_id) for d in ledger.deletes}
    by_document: dict[tuple[str, str], list[Upload]] = defaultdict(list)
    for upload in sorted(ledger.uploads, key=lambda u: u.accepted_at):
        by_document[(upload.tenant, upload.document_id)].append(upload)
    expected = {}
    for key, uploads in by_document.items():
        done = [(u, job) for u in uploads
                if (job := view.jobs.get(u.job_id)) is not None and job.get("status") == "done"]
        options = [(u, job) for u, job in done if not any(
            later.accepted_at > _ended(job) for later, _ in done if later is not u)]
        serving, current_marker = (options[-1][1], options[-1][0].marker) if options \
            else (None, None)
        if len(options) > 1 and key not in deleted:
            record = view.documents(*key)
            for upload, job in options:
                if record is not None and record.chunks_key == job.get("chunks_key"):
                    serving, current_marker = job, upload.marker
        expected[key] = Expected(
            tenant=key[0], document_id=key[1], deleted=key in deleted, serving=serving,
            markers=frozenset(u.marker for u in uploads if u.marker),
            current_marker=current_marker)
    return expected


def _ended(job: Mapping[str, Any]) -> float:
    ended = _terminal_at(job)
    return ended.timestamp() if ended is not None else float("inf")


# --- records ---------------------------------------------------------------------------------

def _check_documents(report: Report, ledger: Ledger, view: StoreView,
                     expected: Mapping[tuple[str, str], Expected]) -> None:
    for (tenant, document_id), want in expected.items():
        rows = view.document_rows.get((tenant, document_id), 0)
        if rows > 1:
            report.add("duplicated", f"{tenant}/{document_id} has {rows} records")
        record = view.documents(tenant, document_id)
        if want.deleted:
            if record is not None and not record.deleted:
                report.add("deleted_found", f"{tenant}/{document_id} was deleted, its record "
                                            "is live")
            continue
        if want.serving is None:
            continue
        if record is None or record.deleted:
            report.add("lost", f"{tenant}/{document_id} serves content but has no live record")
        elif record.chunks_key != want.serving.get("chunks_key"):
            report.add("duplicated", f"{tenant}/{document_id}: the record serves "
                                     f"{record.chunks_key}, the last done upload brought "
                                     f"{want.serving.get('chunks_key')}")


# --- objects ---------------------------------------------------------------------------------

def _needed_keys(ledger: Ledger, view: StoreView,
                 expected: Mapping[tuple[str, str], Expected]) -> tuple[set[str], set[str]]:
    """(keys the current content needs, keys a failed job of a live document may keep for
    a retry)."""
    needed: set[str] = set()
    for want in expected.values():
        needed |= want.keys()
    kept: set[str] = set()
    for upload in ledger.uploads:
        want = expected[(upload.tenant, upload.document_id)]
        job = view.jobs.get(upload.job_id)
        if want.deleted or job is None or job.get("status") != "failed":
            continue
        kept |= {key for key in (job.get("object_key"), job.get("chunks_key"),
                                 job.get("embeddings_key")) if key}
        uri = job.get("source_uri") or ""
        if uri.startswith("object:"):
            kept.add(uri.removeprefix("object:"))
    return needed, kept


def _check_objects(report: Report, ledger: Ledger, view: StoreView,
                   expected: Mapping[tuple[str, str], Expected]) -> None:
    needed, kept = _needed_keys(ledger, view, expected)
    present = set(view.object_keys)
    for key in sorted(present - needed - kept):
        report.add("orphaned", f"object {key} belongs to no record")
    for key in sorted(needed - present):
        report.add("orphaned", f"object {key} is missing, a record needs it")


# --- vectors ---------------------------------------------------------------------------------

def _owner(vector_id: str) -> str:
    head = vector_id.split("#", 1)[0]
    return head.split(".", 1)[0]


def _check_vectors(report: Report, ledger: Ledger, view: StoreView,
                   expected: Mapping[tuple[str, str], Expected]) -> None:
    tenant_of = {document_id: tenant for tenant, document_id in expected}
    for namespace in sorted(set(view.vectors) | set(ledger.tenants())):
        stored = view.vectors.get(namespace, {})
        by_document: dict[str, set[str]] = defaultdict(set)
        for vector_id, metadata in stored.items():
            owner = _owner(vector_id)
            if str(metadata.get("document_id", owner)) != owner:
                report.add("cross_tenant", f"vector {vector_id} in {namespace} says document "
                                           f"{metadata.get('document_id')}")
            by_document[owner].add(vector_id)
        for owner, ids in sorted(by_document.items()):
            home = tenant_of.get(owner)
            if home is None:
                report.add("orphaned", f"{len(ids)} vectors in {namespace} of unknown "
                                       f"document {owner}")
            elif home != namespace:
                report.add("cross_tenant", f"{len(ids)} vectors of {home}'s {owner} in "
                                           f"{namespace}")
        for (tenant, document_id), want in expected.items():
            if tenant != namespace:
                continue
            ids = by_document.get(document_id, set())
            if want.deleted:
                if ids:
                    report.add("deleted_found", f"{tenant}/{document_id} was deleted, "
                                                f"{len(ids)} vectors remain")
                continue
            wanted = want.vector_ids
            versions = {vector_id.split("#", 1)[0] for vector_id in ids}
            if len(versions) > 1:
                report.add("duplicated", f"{tenant}/{document_id} has {len(versions)} "
                                         "versions in the index")
            elif ids - wanted:
                report.add("orphaned", f"{tenant}/{document_id}: {len(ids - wanted)} vectors "
                                       "of a version it does not serve")
            if wanted - ids:
                report.add("lost", f"{tenant}/{document_id}: {len(wanted - ids)} of "
                                   f"{len(wanted)} vectors missing")


# --- search ----------------------------------------------------------------------------------

def _check_search(report: Report, ledger: Ledger, view: StoreView,
                  expected: Mapping[tuple[str, str], Expected], top_k: int) -> None:
    tenants = ledger.tenants()
    marker_home: dict[str, Expected] = {}
    for want in expected.values():
        for marker in want.markers:
            marker_home[marker] = want
    queries = [(tenant, marker) for tenant in tenants for marker in sorted(marker_home)]
    with ThreadPoolExecutor(max_workers=SEARCH_THREADS) as pool:
        answers = list(pool.map(lambda query: _search(view, *query, top_k), queries))
    for (tenant, marker), hits in zip(queries, answers, strict=True):
        if isinstance(hits, Exception):  # a query that fails is a finding, not a crash
            report.add("lost", f"search in {tenant} for {marker} failed: "
                               f"{type(hits).__name__}: {hits}"[:300])
            continue
        _judge_hits(report, tenant, marker, marker_home[marker], hits, marker_home)


def _search(view: StoreView, tenant: str, marker: str, top_k: int
            ) -> list[SearchHit] | Exception:
    try:
        return view.search(tenant, marker, top_k)
    except Exception as exc:
        return exc


def _judge_hits(report: Report, tenant: str, marker: str, home: Expected,
                hits: Iterable[SearchHit], marker_home: Mapping[str, Expected]) -> None:
    found = False
    for hit in hits:
        carried = [m for m in marker_home if m in hit.text]
        for other in carried:
            owner = marker_home[other]
            if owner.tenant != tenant:
                report.add("cross_tenant", f"search in {tenant} returned {owner.tenant}'s "
                                           f"marker {other}")
            elif owner.deleted:
                report.add("deleted_found", f"search in {tenant} returned deleted "
                                            f"{owner.document_id} ({other})")
            elif other != owner.current_marker:
                report.add("duplicated", f"search in {tenant} returned superseded content "
                                         f"{other} of {owner.document_id}")
        if hit.document_id == home.document_id and home.tenant == tenant:
            found = True
    wanted = home.tenant == tenant and not home.deleted and marker == home.current_marker
    if wanted and not found:
        report.add("lost", f"search in {tenant} for {marker} does not find "
                           f"{home.document_id}")


# --- the table -------------------------------------------------------------------------------

COLUMNS = ("scenario", "jobs", "in flight", "done", "failed", "lost", "duplicated", "orphaned",
           "cross-tenant", "deleted", "recovery p50/max (s)", "bound (s)", "result")


def row(report: Report) -> list[str]:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    return [report.scenario, str(report.jobs), str(report.in_flight), str(report.done),
            str(report.failed),
            str(report.lost), str(report.duplicated), str(report.orphaned),
            str(report.cross_tenant), str(report.deleted_found),
            f"{seconds(report.recovery_p50)} / {seconds(report.recovery_max)}",
            seconds(report.recovery_bound), report.verdict]


def table(reports: Sequence[Report]) -> str:
    """A Markdown table, one row per scenario."""
    rows = [list(COLUMNS)] + [row(r) for r in reports]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
