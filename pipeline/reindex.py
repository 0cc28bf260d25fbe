"""Re-index a tenant into another vector index from the stored embeddings: no embedder call.

Every current version keeps its chunks and embeddings in the object store, so a new index
(an empty LanceDB table, another Pinecone index or namespace) is filled by reading those and
upserting the same vectors under the same ids. The steps, each safe to repeat:

1. **Start.** The run is recorded (``ReindexRun``) and the tenant's route gets the target as
   ``building``: from then on every write of the stages (upserts, and the deletes of their
   cleanups) goes to the old index and to the new one (``adapters.routing``).
2. **Copy.** Documents are copied in id order, a page at a time; after each page the run
   records the last document id done, so a run that was killed resumes after it
   (``reindex`` again with the same target).
3. **Catch up.** Documents whose records changed since the run began (a version settled, a
   delete) are compared with the new index and put right: missing vectors of the served
   version upserted, vectors of versions neither served nor claimed deleted.
4. **Switch.** The route's ``active`` becomes the target in one compare-and-set: search reads
   the old index until then and the new one after. The old index is left as it was.
"""

import uuid
from collections.abc import Callable
from datetime import timedelta

from adapters.ports import DocumentPages, IndexRegistry
from adapters.routing.vector_index import Placed, RoutedVectorIndex
from domain.documents import Document, VectorRecord, chunk_id, version_id, version_of_vector
from domain.errors import ConfigurationError, NotFoundError, PermanentError, TransientError
from domain.indexes import IndexRoute, IndexTarget, ReindexRun
from domain.job import utcnow
from pipeline import artifacts
from pipeline.bootstrap import Services
from pipeline.stages import UPSERT_BATCH, version_records

#: Documents copied between two progress records.
DOCUMENTS_PER_STEP = 50
#: Records changed this long before the run began are caught up too (clock skew, and writers
#: that read the route just before it named the new index).
CATCH_UP_MARGIN = timedelta(minutes=5)
MAX_ROUTE_TRIES = 20
#: Document ids kept on a run as examples of what could not be copied.
MAX_SKIPPED_EXAMPLES = 20

Progress = Callable[[ReindexRun], None]


def routed(services: Services) -> RoutedVectorIndex:
    """The per-tenant routed index; ConfigurationError when this process has none."""
    if services.indexes is None or not isinstance(services.vectors, RoutedVectorIndex):
        raise ConfigurationError(
            "re-indexing needs the vector index and the document records from settings "
            "(MongoDB keeps the routes)")
    return services.vectors


def pages(services: Services) -> DocumentPages:
    if not isinstance(services.documents, DocumentPages):
        raise ConfigurationError("this document repository cannot list documents")
    return services.documents


def served_vectors(services: Services, document: Document) -> list[VectorRecord]:
    """The vectors of the document's served version, from its stored chunks and embeddings
    (none for a deleted document). NotFoundError or PermanentError when those are missing,
    unreadable or of another shape than the embedder's."""
    served = document.served
    if served is None or document.deleted:
        return []
    chunk_set = artifacts.load_chunks(services.objects, served.chunks_key)
    if not served.embeddings_key:
        raise PermanentError(f"document {document.document_id} records no embeddings")
    matrix = artifacts.load_embeddings(services.objects, served.embeddings_key)
    if matrix.shape != (len(chunk_set.chunks), services.embedder.dimension):
        raise PermanentError(
            f"stored embeddings of {document.document_id} have shape {matrix.shape}, expected "
            f"({len(chunk_set.chunks)}, {services.embedder.dimension})")
    return version_records(document.document_id, served.vector_version, document.source,
                           served.sha256, served.created_at, served.chunks_key, chunk_set,
                           matrix, served.metadata)


def kept_versions(document: Document) -> set[str]:
    """The vector versions a document may have in an index: served, or claimed by a job."""
    kept = {version_id(document.document_id, claim.job_id) for claim in document.claims}
    if document.served is not None and not document.deleted:
        kept.add(document.served.vector_version)
    return kept


def expected_ids(document: Document) -> list[str]:
    served = document.served
    if served is None or document.deleted:
        return []
    return [chunk_id(served.vector_version, i) for i in range(served.chunk_count)]


def upsert(placed: Placed, tenant: str, records: list[VectorRecord]) -> None:
    for first in range(0, len(records), UPSERT_BATCH):
        placed.index.upsert_vector(placed.name(tenant), records[first:first + UPSERT_BATCH])


def change_route(services: Services, tenant: str,
                 apply: Callable[[IndexRoute], IndexRoute]) -> IndexRoute:
    """Compare-and-set the tenant's route, reading and applying again after a lost race."""
    registry = routed_registry(services)
    for _ in range(MAX_ROUTE_TRIES):
        route = registry.get_route(tenant)
        stored = registry.put_route(apply(route or IndexRoute(tenant=tenant)),
                                    route.revision if route is not None else None)
        if stored is not None:
            return stored
    raise TransientError(f"the index route of tenant {tenant} kept changing")


def routed_registry(services: Services) -> IndexRegistry:
    routed(services)
    assert services.indexes is not None
    return services.indexes


def reindex(services: Services, tenant: str, target: IndexTarget, *,
            documents_per_step: int = DOCUMENTS_PER_STEP,
            progress: Progress | None = None) -> ReindexRun:
    """Fill ``target`` with the tenant's current versions and switch the tenant to it; run
    again after a kill, it resumes where the last progress record says."""
    index = routed(services)
    registry = routed_registry(services)
    run = _start(services, index, tenant, target)
    placed = index.placed(target)
    listing = pages(services)
    while True:
        documents = listing.list_documents_page(tenant=tenant, after=run.last_document_id,
                                                limit=documents_per_step)
        if not documents:
            break
        copied, vectors, skipped = 0, 0, list(run.skipped)
        for document in documents:
            try:
                records = served_vectors(services, document)
            except (NotFoundError, PermanentError):
                skipped.append(document.document_id)
                continue
            upsert(placed, tenant, records)
            copied += 1 if records else 0
            vectors += len(records)
        run = run.model_copy(update={
            "last_document_id": documents[-1].document_id, "updated_at": utcnow(),
            "documents_copied": run.documents_copied + copied,
            "vectors_copied": run.vectors_copied + vectors,
            "documents_skipped": run.documents_skipped + len(skipped) - len(run.skipped),
            "skipped": skipped[:MAX_SKIPPED_EXAMPLES]})
        registry.save_run(run)
        if progress is not None:
            progress(run)
    _catch_up(services, placed, tenant, run)
    change_route(services, tenant, lambda route: route.model_copy(
        update={"active": target, "building": None, "run_id": run.run_id}))
    run = run.model_copy(update={"state": "done", "finished_at": utcnow(),
                                 "updated_at": utcnow()})
    registry.save_run(run)
    return run


def _start(services: Services, index: RoutedVectorIndex, tenant: str,
           target: IndexTarget) -> ReindexRun:
    registry = routed_registry(services)
    run = registry.get_run(tenant)
    if run is not None and run.state == "copying":
        if run.target != target:
            raise PermanentError(
                f"a re-index of tenant {tenant} to {run.target.spec} is under way: give "
                f"--to {run.target.spec} to resume it, or --abort to give it up")
        run = run.model_copy(update={"starts": run.starts + 1, "updated_at": utcnow()})
        registry.save_run(run)
        return run
    route = registry.get_route(tenant)
    if route is not None and route.active == target:
        raise PermanentError(f"tenant {tenant} is already served from {target.spec}")
    placed = index.placed(target)
    if placed.index.count(placed.name(tenant)) > 0:
        raise PermanentError(
            f"{target.spec} already holds vectors for tenant {tenant}: re-index into an "
            "empty table or namespace (name another with #<name>)")
    now = utcnow()
    run = ReindexRun(run_id=uuid.uuid4().hex, tenant=tenant, target=target,
                     source=route.active if route is not None else None,
                     started_at=now, updated_at=now)
    registry.save_run(run)
    change_route(services, tenant, lambda current: current.model_copy(
        update={"building": target, "run_id": run.run_id}))
    return run


def _catch_up(services: Services, placed: Placed, tenant: str, run: ReindexRun) -> None:
    """Put right, in the new index, every document whose record changed since the run began."""
    listing = pages(services)
    after: str | None = None
    since = run.started_at - CATCH_UP_MARGIN
    while True:
        documents = listing.list_documents_page(tenant=tenant, after=after,
                                                limit=DOCUMENTS_PER_STEP, updated_since=since)
        if not documents:
            return
        for document in documents:
            sync_document(services, placed, tenant, document)
        after = documents[-1].document_id


def sync_document(services: Services, placed: Placed, tenant: str,
                  document: Document) -> tuple[int, int]:
    """Make one index hold exactly the document's served vectors (and leave those of claimed
    versions): (vectors upserted, vectors deleted). Missing artifacts leave it as it is."""
    name = placed.name(tenant)
    doc_id = document.document_id
    listed = [vid for vid in placed.index.list_ids(name, doc_id)
              if vid[len(doc_id):len(doc_id) + 1] in (".", "#")]
    keep = kept_versions(document)
    surplus = [vid for vid in listed if version_of_vector(vid) not in keep]
    if surplus:
        placed.index.delete_ids(name, surplus)
    upserted = 0
    if set(expected_ids(document)) - set(listed):
        try:
            records = served_vectors(services, document)
        except (NotFoundError, PermanentError):
            records = []
        upsert(placed, tenant, records)
        upserted = len(records)
    return upserted, len(surplus)


def abort(services: Services, tenant: str) -> ReindexRun:
    """Give up the tenant's re-index under way: writes stop going to its target, which keeps
    what was copied; the tenant stays on its current index."""
    registry = routed_registry(services)
    run = registry.get_run(tenant)
    if run is None or run.state != "copying":
        raise PermanentError(f"no re-index of tenant {tenant} is under way")
    target = run.target
    change_route(services, tenant, lambda route: route.model_copy(
        update={"building": None} if route.building == target else {}))
    run = run.model_copy(update={"state": "aborted", "finished_at": utcnow(),
                                 "updated_at": utcnow()})
    registry.save_run(run)
    return run


def status(services: Services, tenant: str) -> tuple[IndexRoute | None, ReindexRun | None]:
    registry = routed_registry(services)
    return registry.get_route(tenant), registry.get_run(tenant)
