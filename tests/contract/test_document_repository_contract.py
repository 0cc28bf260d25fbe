"""The DocumentRepository contract (adapters/ports.py), on the memory and MongoDB adapters."""

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapters.mongodb.repositories import MongoDocumentRepository
from adapters.ports import DocumentRepository
from domain.documents import Document, document_id, version_id
from domain.errors import TransientError
from domain.versions import Claim, Version
from localstack.servers import free_port
from tests.support import repositories


@pytest.fixture(params=repositories.KINDS)
def repo(request: pytest.FixtureRequest) -> Iterator[DocumentRepository]:
    yield from repositories.document_repository(request.param, request)


def served(sha256: str = "aa" * 32, *, tenant: str = "acme", job_id: str = "job-000001",
           **changes: object) -> Version:
    values: dict[str, object] = {
        "job_id": job_id, "created_at": repositories.now_ms(), "sha256": sha256,
        "object_key": f"{tenant}/{sha256}", "size": 1234, "source_name": "a.txt",
        "content_type": "text/plain", "chunks_key": f"{tenant}/derived/{sha256}/chunks.json",
        "embeddings_key": f"{tenant}/derived/{sha256}/chunks.npy",
        "vector_version": "doc_x.0123456789ab", "chunk_count": 7,
        "keywords": ["galaxy", "telescope"],
    }
    return Version.model_validate({**values, **changes})


def make_document(source: str = "docs/a.txt", *, tenant: str = "acme", sha256: str = "aa" * 32,
                  **changes: object) -> Document:
    now = repositories.now_ms()
    values: dict[str, object] = {
        "document_id": document_id(tenant, source), "tenant": tenant, "source": source,
        "source_name": source.rsplit("/", 1)[-1], "created_at": now, "updated_at": now,
        "served": served(sha256, tenant=tenant),
    }
    return Document.model_validate({**values, **changes})


def claim(job_id: str, sha256: str) -> Claim:
    return Claim(job_id=job_id, sha256=sha256, created_at=repositories.now_ms())


def test_put_creates_then_get_returns_the_record(repo: DocumentRepository) -> None:
    document = make_document(claims=[claim("job-000002", "bb" * 32)])
    stored = repo.put(document, None)
    assert stored == document.model_copy(update={"revision": 1})
    assert repo.get("acme", document.document_id) == stored


def test_put_of_a_new_record_loses_to_an_existing_one(repo: DocumentRepository) -> None:
    first = repo.put(make_document(), None)
    assert first is not None
    assert repo.put(make_document(served=None), None) is None
    assert repo.get("acme", first.document_id) == first


def test_put_is_compare_and_set_on_the_revision(repo: DocumentRepository) -> None:
    first = repo.put(make_document(), None)
    assert first is not None
    second = repo.put(first.model_copy(update={"served": None, "deleted": True}), 1)
    assert second is not None
    assert second.revision == 2
    assert second.served is None
    assert second.deleted
    stale = repo.put(first.model_copy(update={"source_name": "stale.txt"}), 1)
    assert stale is None  # written against revision 1, which is gone: nothing written
    assert repo.get("acme", first.document_id) == second
    assert repo.put(second, 7) is None
    assert repo.put(make_document("never-stored"), 1) is None
    assert repo.get("acme", make_document("never-stored").document_id) is None


def test_of_writers_that_read_the_same_revision_exactly_one_wins(
        repo: DocumentRepository) -> None:
    base = repo.put(make_document(), None)
    assert base is not None
    barrier = threading.Barrier(8)
    results: list[Document | None] = []
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            barrier.wait()
            results.append(repo.put(base.model_copy(update={
                "claims": [claim(f"job-{n:06d}", "cc" * 32)]}), base.revision))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    assert repo.get("acme", base.document_id) == winners[0]
    assert winners[0].revision == 2


def test_get_of_a_missing_document_is_none(repo: DocumentRepository) -> None:
    assert repo.get("acme", "doc_missing") is None


def test_tenants_are_isolated(repo: DocumentRepository) -> None:
    shared_id = "doc_shared"
    acme = repo.put(make_document(document_id=shared_id, tenant="acme", source="a"), None)
    beta = repo.put(make_document(document_id=shared_id, tenant="beta", source="b"), None)
    assert acme is not None
    assert beta is not None
    assert repo.get("acme", shared_id) == acme
    assert repo.get("beta", shared_id) == beta
    assert repo.get("gamma", shared_id) is None
    assert repo.put(acme.model_copy(update={"tenant": "gamma"}), 1) is None
    assert [d.document_id for d in repo.using_content("beta", "aa" * 32)] == [shared_id]
    assert repo.using_content("gamma", "aa" * 32) == []


def test_using_content_finds_served_versions_and_claims(repo: DocumentRepository) -> None:
    sha, other = "cc" * 32, "dd" * 32
    repo.put(make_document("serves", sha256=sha), None)
    repo.put(make_document("claims", sha256=other, claims=[claim("job-000009", sha)]), None)
    repo.put(make_document("deleted", served=None, deleted=True,
                           claims=[claim("job-000010", sha)]), None)
    repo.put(make_document("unrelated", sha256=other), None)
    repo.put(make_document("elsewhere", tenant="beta", sha256=sha), None)

    found = sorted(d.source for d in repo.using_content("acme", sha))
    assert found == ["claims", "deleted", "serves"]
    assert sorted(d.source for d in repo.using_content("acme", other)) == ["claims",
                                                                           "unrelated"]
    assert repo.using_content("acme", "ee" * 32) == []


def test_datetimes_round_trip_timezone_aware(repo: DocumentRepository) -> None:
    tokyo = timezone(timedelta(hours=9))
    created = datetime(2026, 5, 4, 9, 15, 0, 987654, tzinfo=tokyo)
    document = make_document(created_at=created, updated_at=created,
                             served=served(created_at=created),
                             claims=[Claim(job_id="j", sha256="bb" * 32, created_at=created)])
    repo.put(document, None)
    stored = repo.get("acme", document.document_id)
    assert stored is not None
    assert stored.served is not None
    assert stored.served == document.served  # the version model keeps milliseconds itself
    assert stored.claims == document.claims
    for value in (stored.created_at, stored.updated_at, stored.served.created_at):
        assert value.tzinfo is not None
        assert abs(value - created) < timedelta(milliseconds=1)
    assert stored.created_at.astimezone(UTC).replace(microsecond=0) == datetime(
        2026, 5, 4, 0, 15, 0, tzinfo=UTC)


def test_mongo_gives_document_datetimes_back_in_utc(mongo_url: str,
                                                     mongo_database_name: str) -> None:
    repo = MongoDocumentRepository(mongo_url, mongo_database_name, repositories.TEST_TIMEOUT_MS)
    try:
        created = datetime(2026, 5, 4, 9, 15, 0, 987654, tzinfo=timezone(timedelta(hours=9)))
        repo.put(make_document(created_at=created, updated_at=created), None)
        stored = repo.get("acme", make_document().document_id)
        assert stored is not None
        assert stored.created_at == datetime(2026, 5, 4, 0, 15, 0, 987000, tzinfo=UTC)
        assert stored.created_at.utcoffset() == timedelta(0)
    finally:
        repo.close()


def test_a_repository_on_a_closed_port_raises_transient_error_quickly() -> None:
    port = free_port()
    repo = MongoDocumentRepository(f"mongodb://ingest:t0p-secret@127.0.0.1:{port}/", "x",
                                   timeout_ms=300)
    try:
        for call in (lambda: repo.get("acme", "doc_x"), lambda: repo.put(make_document(), 1),
                     lambda: repo.using_content("acme", "aa")):
            started = time.monotonic()
            with pytest.raises(TransientError) as caught:
                call()
            assert time.monotonic() - started < 5
            assert f"127.0.0.1:{port}" in str(caught.value)
            assert "t0p-secret" not in str(caught.value)
    finally:
        repo.close()


def test_mongo_reads_a_record_of_the_earlier_flat_shape_as_its_served_version(
        mongo_url: str, mongo_database_name: str, mongo_admin) -> None:  # type: ignore[no-untyped-def]
    """Before versions were kept apart, ``sha256`` could be a later job's; the searchable
    version was the content ``chunks_key`` was derived from."""
    doc_id, old, newer = document_id("acme", "r"), "aa" * 32, "bb" * 32
    chunks_key = f"acme/derived/{old}/chunks-v2-m-t200-o30.json"
    now = repositories.now_ms()
    mongo_admin[mongo_database_name]["documents"].insert_one({
        "document_id": doc_id, "tenant": "acme", "source": "r", "source_name": "r.txt",
        "content_type": "text/plain", "sha256": newer, "object_key": f"acme/{newer}",
        "job_id": "job-old", "size": 10, "chunk_count": 3, "chunks_key": chunks_key,
        "keywords": ["k"], "created_at": now, "updated_at": now, "deleted": False})
    repo = MongoDocumentRepository(mongo_url, mongo_database_name, repositories.TEST_TIMEOUT_MS)
    try:
        stored = repo.get("acme", doc_id)
        assert stored is not None
        assert stored.served is not None
        assert (stored.served.sha256, stored.served.object_key) == (old, f"acme/{old}")
        assert stored.served.vector_version == version_id(doc_id, chunks_key)
        assert (stored.chunk_count, stored.keywords, stored.revision) == (3, ["k"], 0)
        assert repo.put(stored.model_copy(update={"source_name": "x"}), 0) is not None
        assert repo.get("acme", doc_id).revision == 1  # type: ignore[union-attr]
    finally:
        repo.close()


def test_documents_page_in_id_order_and_tenants_are_listed(repo: DocumentRepository) -> None:
    from adapters.ports import DocumentPages

    assert isinstance(repo, DocumentPages)
    made = [make_document(f"docs/{n}.txt") for n in range(5)]
    for document in made:
        assert repo.put(document, None) is not None
    assert repo.put(make_document("docs/x.txt", tenant="acme-eu"), None) is not None
    ids = sorted(document.document_id for document in made)

    first = repo.list_documents_page(tenant="acme", limit=3)
    rest = repo.list_documents_page(tenant="acme", after=first[-1].document_id, limit=3)

    assert [d.document_id for d in first + rest] == ids
    assert repo.list_documents_page(tenant="acme", updated_since=datetime.now(UTC)
                                    + timedelta(minutes=1)) == []
    assert len(repo.list_documents_page(tenant="acme", updated_since=datetime.now(UTC)
                                        - timedelta(minutes=1))) == 5
    assert set(repo.tenants()) >= {"acme", "acme-eu"}
