"""The version model's moves on the repositories (its rules are in ``domain.versions``):
claim a document, make a job's version the served one, discard an obsolete job's work,
and remove content, chunks, embeddings and vectors that nothing uses any more.

Every change of a document record is a compare-and-set on its revision (``change``), so two
jobs that race cannot overwrite each other. The orders below matter where two processes
interleave:

- a job claims the document before it writes or relies on stored content, so a cleanup
  that reads the claims after that sees its content as in use;
- what a record stops using is written on it as a leftover in the same compare-and-set,
  and struck off only after a cleanup checked it, so a cleanup cut short is finished by
  the next one (any later settle, discard or delete of the document);
- cleanup lists a document's vectors first and reads the record after, and keeps every
  version that record serves or claims, so a version that becomes current (or is claimed)
  meanwhile keeps its vectors;
- a job settles (current, or obsolete: remove its own) after every upsert, also after a
  duplicate run's late upsert, so no job leaves vectors of a version nobody serves.
"""

from collections.abc import Callable, Iterable

from domain.documents import (
    Document,
    content_key,
    sanitize_filename,
    vector_ids,
    version_id,
    version_of_vector,
)
from domain.errors import NotFoundError, PermanentError, TransientError
from domain.job import IngestionJob, utcnow
from domain.status import JobStatus
from domain.versions import (
    Claim,
    Leftover,
    Version,
    claim_of,
    holds,
    is_obsolete,
    leftover_of,
    without_claims,
)
from pipeline import artifacts
from pipeline.bootstrap import Services
from pipeline.dedupe import current_chunks_key

#: Compare-and-set attempts before giving up (a transient condition: the task is retried).
MAX_TRIES = 50

Change = Callable[[Document | None], Document | None]


def change(services: Services, tenant: str, document_id: str, apply: Change
           ) -> tuple[Document | None, Document | None]:
    """Apply ``apply`` to the stored record by compare-and-set, reading and applying again
    when another writer got there first. ``apply`` returns the record to write, or None to
    write nothing. Returns the record before and after."""
    for _ in range(MAX_TRIES):
        before = services.documents.get(tenant, document_id)
        wanted = apply(before)
        if wanted is None:
            return before, before
        stored = services.documents.put(wanted.model_copy(update={"updated_at": utcnow()}),
                                        before.revision if before is not None else None)
        if stored is not None:
            return before, stored
    raise TransientError(f"document {document_id} kept changing under concurrent writers")


def status_of(services: Services, job_id: str) -> JobStatus | None:
    try:
        return services.jobs.get(job_id).status
    except NotFoundError:
        return None


def obsolete(services: Services, job: IngestionJob) -> bool:
    """Whether the job can no longer make its version current (``domain.versions``)."""
    document = services.documents.get(job.tenant, job.document_id)
    return document is not None and is_obsolete(document, job.job_id, job.created_at)


# -- claims -----------------------------------------------------------------------------------

def claim(services: Services, job: IngestionJob, sha256: str) -> bool:
    """Record that ``job`` brings content ``sha256`` to its document (creating the record on
    the first upload), before anything of that content is written. False, and nothing
    recorded, when the job is obsolete. Idempotent."""
    new = Claim(job_id=job.job_id, sha256=sha256, created_at=job.created_at)
    refused = False

    def apply(document: Document | None) -> Document | None:
        nonlocal refused
        if document is None:
            now = utcnow()
            return Document(document_id=job.document_id, tenant=job.tenant, source=job.source,
                            source_name=sanitize_filename(job.source_name), created_at=now,
                            updated_at=now, claims=[new])
        refused = is_obsolete(document, job.job_id, job.created_at)
        mine = claim_of(document, job.job_id)
        served_by_me = document.served is not None and document.served.job_id == job.job_id
        if refused or served_by_me or mine == new:
            return None
        leftovers = list(document.leftovers)
        if mine is not None and mine.sha256 != sha256:  # the source changed between runs
            leftovers.append(Leftover(sha256=mine.sha256))
        return document.model_copy(update={
            "claims": [*without_claims(document.claims, [job.job_id]), new],
            "leftovers": leftovers})

    _, after = change(services, job.tenant, job.document_id, apply)
    if after is not None and after.leftovers:
        collect(services, job.tenant, job.document_id)
    return not refused


def drop_claim(services: Services, job: IngestionJob, *, content_unused: bool = True
               ) -> Document | None:
    """Remove the job's claim, if it has one, its content left over for the next cleanup
    (unless ``content_unused`` is False: content known to be served); the record after."""
    def apply(document: Document | None) -> Document | None:
        mine = claim_of(document, job.job_id) if document is not None else None
        if document is None or mine is None:
            return None
        leftovers = list(document.leftovers)
        if content_unused:
            leftovers.append(Leftover(sha256=mine.sha256, keys=list(_keys_of_job(job))))
        return document.model_copy(update={
            "claims": without_claims(document.claims, [job.job_id]), "leftovers": leftovers})

    return change(services, job.tenant, job.document_id, apply)[1]


def _prune_dead_claims(services: Services, tenant: str, document_id: str) -> None:
    """Remove the claims that no longer hold (``domain.versions.holds``: jobs done, gone, or
    failed and obsolete), their content left over for collection."""
    def apply(document: Document | None) -> Document | None:
        if document is None:
            return None
        dead = [c for c in document.claims
                if not holds(document, c, status_of(services, c.job_id))]
        if not dead:
            return None
        return document.model_copy(update={
            "claims": without_claims(document.claims, [c.job_id for c in dead]),
            "leftovers": [*document.leftovers,
                          *(Leftover(sha256=c.sha256) for c in dead)]})

    change(services, tenant, document_id, apply)


# -- becoming current -------------------------------------------------------------------------

def version_of(job: IngestionJob) -> Version:
    """The complete version a job that went through every stage brings."""
    def required(value: object, what: str) -> object:
        if value is None:
            raise PermanentError(f"the job has no {what}: an earlier stage did not finish")
        return value

    return Version.model_validate({
        "job_id": job.job_id, "created_at": job.created_at,
        "sha256": required(job.sha256, "sha256"),
        "object_key": required(job.object_key, "key"), "size": required(job.size, "size"),
        "source_name": sanitize_filename(job.source_name), "content_type": job.content_type,
        "chunks_key": required(job.chunks_key, "chunks"),
        "embeddings_key": required(job.embeddings_key, "vectors"),
        "chunk_count": required(job.chunk_count, "chunk count"),
        "vector_version": version_id(job.document_id, job.job_id),
        "keywords": job.keywords, "metadata": job.metadata,
    })


def settle(services: Services, job: IngestionJob) -> bool:
    """After the job's vectors are in: make its version current if nothing newer is served
    and the document was not deleted since the job began, else discard its work. True when
    its version is (now) the served one. Run again, it finishes a cleanup cut short."""
    version = version_of(job)
    obsolete_now = False

    def apply(document: Document | None) -> Document | None:
        nonlocal obsolete_now
        obsolete_now = False
        if document is not None and document.served is not None \
                and document.served.job_id == job.job_id:
            return None
        if document is not None and is_obsolete(document, job.job_id, job.created_at):
            obsolete_now = True
            return None
        if document is None:  # a record lost since the claim: this version makes it again
            now = utcnow()
            return Document(document_id=job.document_id, tenant=job.tenant, source=job.source,
                            source_name=version.source_name, created_at=now, updated_at=now,
                            served=version)
        replaced = [leftover_of(document.served)] if document.served is not None else []
        return document.model_copy(update={
            "served": version, "deleted": False, "source_name": version.source_name,
            "claims": without_claims(document.claims, [job.job_id]),
            "leftovers": [*document.leftovers, *replaced]})

    _, after = change(services, job.tenant, job.document_id, apply)
    if obsolete_now:
        discard(services, job)
        return False
    if after is not None and (after.leftovers or after.claims):
        collect(services, job.tenant, job.document_id)
    return True


def discard(services: Services, job: IngestionJob) -> None:
    """The work of a job that will not become current: its claim, its vectors (unless they
    are the served ones) and its content, unless something else uses that."""
    after = drop_claim(services, job)
    if after is None:
        after = services.documents.get(job.tenant, job.document_id)
    own = version_id(job.document_id, job.job_id)
    served = after.served.vector_version if after is not None and after.served else None
    if job.chunk_count is not None and own != served:
        services.vectors.delete_ids(job.tenant,
                                    vector_ids(job.document_id, job.job_id, job.chunk_count))
    if after is not None and after.leftovers:
        collect(services, job.tenant, job.document_id)


def delete(services: Services, tenant: str, document_id: str) -> Document:
    """Mark the document deleted as of now (it serves nothing; every job created before now
    is obsolete), then remove its vectors and the content nothing else uses. Returns the
    record as it was."""
    now = utcnow()

    def apply(document: Document | None) -> Document | None:
        if document is None:
            raise NotFoundError(f"no document {document_id}")
        replaced = [leftover_of(document.served)] if document.served is not None else []
        return document.model_copy(update={
            "deleted": True, "deleted_at": now, "served": None,
            "leftovers": [*document.leftovers, *replaced]})

    before, _ = change(services, tenant, document_id, apply)
    assert before is not None
    collect(services, tenant, document_id)
    return before


def collect(services: Services, tenant: str, document_id: str) -> None:
    """Clean up after the record changed: prune dead claims, remove the vectors of every
    version neither served nor claimed, and the objects of the record's leftovers that
    nothing uses any more, then strike those leftovers off. Idempotent; a run cut short is
    finished by the next."""
    _prune_dead_claims(services, tenant, document_id)
    listed = [vid for vid in services.vectors.list_ids(tenant, document_id)
              if vid[len(document_id):len(document_id) + 1] in (".", "#")]
    document = services.documents.get(tenant, document_id)  # read after listing: see above
    if document is None:
        return
    keep = {version_id(document_id, c.job_id) for c in document.claims}
    if document.served is not None:
        keep.add(document.served.vector_version)
    surplus = [vid for vid in listed if version_of_vector(vid) not in keep]
    if surplus:
        services.vectors.delete_ids(tenant, surplus)
    checked = list(document.leftovers)
    if not checked:
        return
    release(services, tenant, [(leftover.sha256, leftover.keys) for leftover in checked])

    def apply(current: Document | None) -> Document | None:
        if current is None or not any(item in checked for item in current.leftovers):
            return None
        return current.model_copy(update={
            "leftovers": [item for item in current.leftovers if item not in checked]})

    change(services, tenant, document_id, apply)


# -- content ----------------------------------------------------------------------------------

def in_use(services: Services, tenant: str, sha256: str) -> bool:
    """Whether a document of the tenant serves this content or a claim for it still holds."""
    for document in services.documents.using_content(tenant, sha256):
        if document.served is not None and document.served.sha256 == sha256:
            return True
        if any(c.sha256 == sha256 and holds(document, c, status_of(services, c.job_id))
               for c in document.claims):
            return True
    return False


def content_keys(services: Services, tenant: str, sha256: str,
                 known: Iterable[str] = ()) -> list[str]:
    """Every object stored for one content: the bytes, and the chunks and embeddings as
    today's settings make them, plus ``known`` keys a version recorded."""
    chunks = current_chunks_key(services, tenant, sha256)
    keys = [content_key(tenant, sha256), chunks,
            artifacts.embeddings_key(chunks, services.embedder.model_name), *known]
    return list(dict.fromkeys(key for key in keys if key))


def release(services: Services, tenant: str,
            contents: Iterable[tuple[str, Iterable[str]]]) -> None:
    """Delete the objects of each (sha256, known keys) that nothing uses any more."""
    merged: dict[str, list[str]] = {}
    for sha256, known in contents:
        merged.setdefault(sha256, []).extend(known)
    for sha256, known in merged.items():
        if in_use(services, tenant, sha256):
            continue
        for key in content_keys(services, tenant, sha256, known):
            services.objects.delete_file(key)


def _keys_of_job(job: IngestionJob) -> tuple[str, ...]:
    return tuple(key for key in (job.chunks_key, job.embeddings_key) if key)


def after_failure(services: Services, job_id: str) -> None:
    """A job that failed while obsolete will never be retried into the served version:
    discard its work now (a failed job that could still become current keeps it, so that a
    retry finds what its earlier stages stored)."""
    try:
        job = services.jobs.get(job_id)
    except NotFoundError:
        return
    if job.status is JobStatus.FAILED and obsolete(services, job):
        discard(services, job)
