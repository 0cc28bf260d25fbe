"""Check a tenant's records, stored objects and vectors against each other, and repair them.

What ``check`` finds, one kind each (``KINDS``), and what ``repair`` does about it:

- ``orphan_vectors``: vectors in the tenant's index of no current version (the document is
  gone or deleted, or the version is neither served nor claimed by a live job). Repair: the
  document's cleanup (``versions.collect``), or a delete when it has no record at all.
- ``missing_vectors``: a served version whose vectors are not all in the index. Repair:
  upsert them from the stored chunks and embeddings (no embedder call).
- ``missing_objects``: a served version whose content, chunks or embeddings object is gone.
  Repair: run the stage that made it again: the content is copied again from the job's
  source (if it is still there with the same sha256), chunks are derived again from the
  content, embeddings from the chunks (each only under today's chunking and model, which the
  object's key names).
- ``orphan_objects``: objects under the tenant's prefix that no document record or unfinished
  job uses, older than ``orphan_grace_seconds`` (an upload being staged has no job yet).
  Repair: delete them, unless their content is in use again by then.
- ``stuck_jobs``: jobs without progress for the reconciler's ``stuck_after_seconds`` that no
  message on the broker carries (``pipeline.redrive.reconcile``'s notion). Repair: dispatch
  the stage they need.

``check`` changes nothing. ``repair`` fixes what a check found and is idempotent: run again,
it finds nothing more to do; what it cannot fix is returned with the reason.
"""

import re
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from adapters.ports import JobPages, ObjectListing
from domain.documents import Document, derived_sha, version_of_vector
from domain.errors import ConfigurationError, ConversaError, NotFoundError, PermanentError
from domain.job import IngestionJob, utcnow
from domain.status import JobStatus, next_stage
from domain.versions import holds
from pipeline import artifacts, stages, versions
from pipeline.bootstrap import Services
from pipeline.dedupe import current_chunks_key
from pipeline.fairness import tenant_lane
from pipeline.reindex import expected_ids, kept_versions, pages, served_vectors
from pipeline.sources import OBJECT_SCHEME, copy_hashing, open_source

KINDS = ("orphan_vectors", "missing_vectors", "missing_objects", "orphan_objects", "stuck_jobs")
PAGE = 500
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Job statuses whose jobs may still use what they stored (all but done).
_UNFINISHED = tuple(status for status in JobStatus if status is not JobStatus.DONE)


@dataclass(frozen=True)
class Finding:
    kind: str
    #: The vector id, document id, object key or job id the finding is about.
    ref: str
    detail: str
    document_id: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {"ref": self.ref, "detail": self.detail}


@dataclass
class Report:
    tenant: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for finding in self.findings:
            counts[finding.kind] += 1
        return counts

    def of(self, kind: str) -> list[Finding]:
        return [finding for finding in self.findings if finding.kind == kind]

    def as_dict(self, examples: int = 5) -> dict[str, Any]:
        return {"tenant": self.tenant, "clean": self.clean, "counts": self.counts(),
                "examples": {kind: [f.as_dict() for f in self.of(kind)[:examples]]
                             for kind in KINDS if self.of(kind)}}


@dataclass
class Repairs:
    tenant: str
    fixed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    #: Findings left as they were, each with the reason.
    left: list[tuple[Finding, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"fixed": self.fixed,
                "left": [{"kind": f.kind, **f.as_dict(), "reason": why} for f, why in self.left]}


# -- check ------------------------------------------------------------------------------------

def check(services: Services, tenant: str, *, in_flight: Collection[str] | None = None,
          stuck_after_seconds: float | None = None,
          orphan_grace_seconds: float | None = None) -> Report:
    """Everything that disagrees between the tenant's records, objects and vectors.
    ``in_flight``: the job ids a message on the broker carries (None: the broker was not
    asked, and stuck jobs are not looked for)."""
    documents = list(_documents(services, tenant))
    jobs = list(_unfinished_jobs(services, tenant))
    status = {job.job_id: job.status for job in jobs}
    report = Report(tenant)
    report.findings += _vector_findings(services, tenant, documents, status)
    report.findings += _missing_objects(services, tenant, documents)
    grace = (orphan_grace_seconds if orphan_grace_seconds is not None
             else services.settings.maintenance.orphan_grace_seconds)
    report.findings += _orphan_objects(services, tenant, documents, jobs, status, grace)
    if in_flight is not None:
        stuck_after = (stuck_after_seconds if stuck_after_seconds is not None
                       else services.settings.reconciler().stuck_after_seconds)
        report.findings += _stuck_jobs(services, tenant, stuck_after, in_flight)
    return report


def _documents(services: Services, tenant: str) -> Iterator[Document]:
    listing, after = pages(services), None
    while documents := listing.list_documents_page(tenant=tenant, after=after, limit=PAGE):
        yield from documents
        after = documents[-1].document_id


def _unfinished_jobs(services: Services, tenant: str) -> Iterator[IngestionJob]:
    if not isinstance(services.jobs, JobPages):
        raise ConfigurationError("this job repository cannot page through a tenant's jobs")
    for wanted in _UNFINISHED:
        after = None
        while found := services.jobs.list_jobs_page(tenant=tenant, status=wanted, limit=PAGE,
                                                    after=after):
            yield from found
            after = (found[-1].created_at, found[-1].job_id)


def _holding(document: Document, status: dict[str, JobStatus]) -> Document:
    """The document with only the claims that still hold (their jobs unfinished, or failed
    and still able to become current)."""
    return document.model_copy(update={"claims": [
        c for c in document.claims if holds(document, c, status.get(c.job_id))]})


def _vector_findings(services: Services, tenant: str, documents: list[Document],
                     status: dict[str, JobStatus]) -> list[Finding]:
    kept: set[str] = set()
    for document in documents:
        kept |= kept_versions(_holding(document, status))
    listed = services.vectors.list_ids(tenant)
    present = set(listed)
    findings = [Finding("orphan_vectors", vid, "of no served or claimed version",
                        version_of_vector(vid).partition(".")[0])
                for vid in listed if version_of_vector(vid) not in kept]
    for document in documents:
        wanted = expected_ids(document)
        missing = [vid for vid in wanted if vid not in present]
        if missing:
            findings.append(Finding(
                "missing_vectors", document.document_id,
                f"{len(missing)} of {len(wanted)} vectors of the served version are not in "
                "the index", document.document_id))
    return findings


def _served_objects(document: Document) -> list[tuple[str, str]]:
    served = document.served
    if served is None or document.deleted:
        return []
    return [("content", served.object_key), ("chunks", served.chunks_key),
            ("embeddings", served.embeddings_key)]


def _missing_objects(services: Services, tenant: str, documents: list[Document]
                     ) -> list[Finding]:
    findings = []
    for document in documents:
        gone = [(what, key) for what, key in _served_objects(document)
                if not key or services.objects.head(key) is None]
        if not gone:
            continue
        # A version replaced meanwhile may have had its objects released: read it again.
        again = services.documents.get(tenant, document.document_id)
        if again is None or again.served is None or again.deleted or document.served is None \
                or again.served.job_id != document.served.job_id:
            continue
        findings += [Finding("missing_objects", key or f"({what})",
                             f"the {what} of the served version", document.document_id)
                     for what, key in gone]
    return findings


def _used_keys(services: Services, tenant: str, documents: list[Document],
               jobs: list[IngestionJob], status: dict[str, JobStatus]) -> set[str]:
    used: set[str] = set()
    for document in documents:
        used.update(key for _, key in _served_objects(document) if key)
        if document.served is not None and not document.deleted:
            used.update(versions.content_keys(services, tenant, document.served.sha256))
        for claim in _holding(document, status).claims:
            used.update(versions.content_keys(services, tenant, claim.sha256))
        for leftover in document.leftovers:  # waiting for a cleanup to decide
            used.update(versions.content_keys(services, tenant, leftover.sha256,
                                              leftover.keys))
    for job in jobs:
        used.update(key for key in (job.object_key, job.chunks_key, job.embeddings_key) if key)
        if job.source_uri.startswith(OBJECT_SCHEME):
            used.add(job.source_uri.removeprefix(OBJECT_SCHEME))
    return used


def _orphan_objects(services: Services, tenant: str, documents: list[Document],
                    jobs: list[IngestionJob], status: dict[str, JobStatus],
                    grace_seconds: float) -> list[Finding]:
    if not isinstance(services.objects, ObjectListing):
        return []
    used = _used_keys(services, tenant, documents, jobs, status)
    before = utcnow() - timedelta(seconds=grace_seconds)
    return [Finding("orphan_objects", item.key, f"{item.size} bytes, used by no document "
                    "or unfinished job")
            for item in services.objects.list_objects(f"{tenant}/")
            if item.key not in used and item.modified < before]


def _stuck_jobs(services: Services, tenant: str, stuck_after: float,
                in_flight: Collection[str]) -> list[Finding]:
    stale = services.jobs.list_stale(older_than_seconds=stuck_after, limit=100_000)
    return [Finding("stuck_jobs", job.job_id,
                    f"{job.status.value} since {job.updated_at.isoformat()}, no message on "
                    "the broker", job.document_id)
            for job in stale if job.tenant == tenant and job.job_id not in in_flight]


def check_tenants(services: Services, in_flight: Collection[str] | None) -> dict[str, int]:
    """Check every tenant with documents (report only): the counts per kind, added up."""
    totals = dict.fromkeys(KINDS, 0)
    for tenant in pages(services).tenants():
        for kind, count in check(services, tenant, in_flight=in_flight).counts().items():
            totals[kind] += count
    return totals


# -- repair -----------------------------------------------------------------------------------

def repair(services: Services, report: Report) -> Repairs:
    """Fix what ``report`` found (stuck jobs first, then objects, vectors, orphans)."""
    tenant = report.tenant
    done = Repairs(tenant)

    def attempt(finding: Finding, fix: Any) -> None:
        try:
            why = fix(services, tenant, finding)
        except ConversaError as exc:
            why = f"{type(exc).__name__}: {exc}"
        if why is None:
            done.fixed[finding.kind] += 1
        else:
            done.left.append((finding, why))

    for finding in report.of("stuck_jobs"):
        attempt(finding, _redispatch)
    for finding in report.of("missing_objects"):
        attempt(finding, _restore_object)
    for finding in report.of("missing_vectors"):
        attempt(finding, _reupsert)
    for document_id in dict.fromkeys(f.document_id or "" for f in report.of("orphan_vectors")):
        group = [f for f in report.of("orphan_vectors") if (f.document_id or "") == document_id]
        why = _drop_vectors(services, tenant, document_id, [f.ref for f in group])
        for finding in group:
            if why is None:
                done.fixed["orphan_vectors"] += 1
            else:
                done.left.append((finding, why))
    for finding in report.of("orphan_objects"):
        attempt(finding, _delete_object)
    return done


def _redispatch(services: Services, tenant: str, finding: Finding) -> str | None:
    job = services.jobs.get(finding.ref)
    stage = next_stage(job.status)
    if stage is None:
        return None  # finished meanwhile
    services.dispatcher.dispatch(job.job_id, stage, tenant_lane(services, job.tenant))
    return None


def _restore_object(services: Services, tenant: str, finding: Finding) -> str | None:
    document = services.documents.get(tenant, finding.document_id or "")
    served = document.served if document is not None and not document.deleted else None
    if served is None:
        return None  # no longer served: nothing to restore
    key = finding.ref
    if services.objects.head(key) is not None:
        return None
    if key == served.object_key:
        return _restore_content(services, served.job_id, served.sha256, key)
    if key == served.chunks_key:
        if key != current_chunks_key(services, tenant, served.sha256):
            return "chunked under other settings than today's: ingest the document again"
        if services.objects.head(served.object_key) is None:
            return "its content is gone too"
        assert document is not None
        chunk_set = stages.derive_chunks(services, document.document_id, served.object_key,
                                         key)
        if len(chunk_set.chunks) != served.chunk_count:
            return (f"derived {len(chunk_set.chunks)} chunks where the version has "
                    f"{served.chunk_count}: ingest the document again")
        return None
    if key == served.embeddings_key:
        if key != artifacts.embeddings_key(served.chunks_key, services.embedder.model_name):
            return "embedded by another model than today's: ingest the document again"
        if services.objects.head(served.chunks_key) is None:
            return "its chunks are gone too"
        stages.derive_embeddings(services, served.chunks_key, key)
        return None
    return "the version records no key for it: ingest the document again"


def _restore_content(services: Services, job_id: str, sha256: str, key: str) -> str | None:
    try:
        job = services.jobs.get(job_id)
    except NotFoundError:
        return "the job that brought it is gone: ingest the document again"
    if job.source_uri.startswith(OBJECT_SCHEME):
        return "its staged upload was removed after storing: ingest the document again"
    services.settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with (open_source(job.source_uri, services.objects) as source,
              tempfile.NamedTemporaryFile(prefix="restore-",
                                          dir=services.settings.data_dir) as tmp):
            found, _ = copy_hashing(source, tmp, services.settings.max_upload_bytes)
            if found != sha256:
                return "its source changed since: ingest the document again"
            services.objects.upload_file(key, Path(tmp.name), {"sha256": sha256})
    except PermanentError as exc:
        return f"its source cannot be read ({exc}): ingest the document again"
    return None


def _reupsert(services: Services, tenant: str, finding: Finding) -> str | None:
    document = services.documents.get(tenant, finding.ref)
    if document is None:
        return None
    records = served_vectors(services, document)
    for first in range(0, len(records), stages.UPSERT_BATCH):
        services.vectors.upsert_vector(tenant, records[first:first + stages.UPSERT_BATCH])
    return None


def _drop_vectors(services: Services, tenant: str, document_id: str,
                  ids: list[str]) -> str | None:
    if document_id and services.documents.get(tenant, document_id) is not None:
        versions.collect(services, tenant, document_id)  # keeps what it serves or claims
        return None
    services.vectors.delete_ids(tenant, ids)
    return None


def _delete_object(services: Services, tenant: str, finding: Finding) -> str | None:
    key = finding.ref
    rest = key.removeprefix(f"{tenant}/")
    sha = derived_sha(key) or (rest if _SHA256.fullmatch(rest) else None)
    if sha is not None and versions.in_use(services, tenant, sha):
        return "its content is in use again"
    services.objects.delete_file(key)
    return None
