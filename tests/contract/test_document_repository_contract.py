"""The DocumentRepository contract (adapters/ports.py), on the memory and MongoDB adapters."""

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapters.mongodb.repositories import MongoDocumentRepository
from adapters.ports import DocumentRepository
from domain.documents import Document, document_id
from domain.errors import TransientError
from localstack.servers import free_port
from tests.support import repositories


@pytest.fixture(params=repositories.KINDS)
def repo(request: pytest.FixtureRequest) -> Iterator[DocumentRepository]:
    yield from repositories.document_repository(request.param, request)


def make_document(source: str = "docs/a.txt", *, tenant: str = "acme", sha256: str = "aa" * 32,
                  **changes: object) -> Document:
    now = repositories.now_ms()
    values: dict[str, object] = {
        "document_id": document_id(tenant, source), "tenant": tenant, "source": source,
        "source_name": source.rsplit("/", 1)[-1], "content_type": "text/plain",
        "sha256": sha256, "object_key": f"{tenant}/{sha256}", "job_id": "job-000001",
        "size": 1234, "created_at": now, "updated_at": now,
    }
    return Document.model_validate({**values, **changes})


def test_upsert_then_get_returns_the_record(repo: DocumentRepository) -> None:
    document = make_document(chunk_count=7, chunks_key="acme/derived/x/chunks",
                             keywords=["galaxy", "telescope"])
    repo.upsert(document)
    assert repo.get("acme", document.document_id) == document


def test_upsert_is_idempotent_and_replaces_the_whole_record(repo: DocumentRepository) -> None:
    first = make_document(chunk_count=7, keywords=["old"])
    repo.upsert(first)
    repo.upsert(first)
    second = make_document(sha256="bb" * 32, job_id="job-000002", chunk_count=None,
                           keywords=[])
    repo.upsert(second)
    stored = repo.get("acme", first.document_id)
    assert stored == second
    assert stored is not None
    assert stored.chunk_count is None
    assert stored.keywords == []
    assert repo.count_by_sha("acme", "aa" * 32) == 0
    assert repo.count_by_sha("acme", "bb" * 32) == 1


def test_concurrent_upserts_of_one_document_leave_one_record(repo: DocumentRepository) -> None:
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def upsert(n: int) -> None:
        try:
            barrier.wait()
            repo.upsert(make_document(job_id=f"job-{n:06d}"))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=upsert, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert repo.count_by_sha("acme", "aa" * 32) == 1
    stored = repo.get("acme", make_document().document_id)
    assert stored is not None
    assert stored.job_id.startswith("job-")


def test_get_of_a_missing_document_is_none(repo: DocumentRepository) -> None:
    assert repo.get("acme", "doc_missing") is None


def test_tenants_are_isolated(repo: DocumentRepository) -> None:
    shared_id = "doc_shared"
    acme = make_document(document_id=shared_id, tenant="acme", source="a")
    beta = make_document(document_id=shared_id, tenant="beta", source="b")
    repo.upsert(acme)
    repo.upsert(beta)
    assert repo.get("acme", shared_id) == acme
    assert repo.get("beta", shared_id) == beta
    assert repo.get("gamma", shared_id) is None
    own = make_document("only-acme")
    repo.upsert(own)
    assert repo.get("beta", own.document_id) is None

    assert repo.mark_deleted("beta", own.document_id) is None  # not beta's to delete
    assert repo.get("acme", own.document_id) == own
    repo.mark_deleted("acme", shared_id)
    beta_now = repo.get("beta", shared_id)
    assert beta_now is not None
    assert not beta_now.deleted
    assert repo.count_by_sha("beta", "aa" * 32) == 1
    assert repo.count_by_sha("acme", "aa" * 32) == 1  # `own` is still live
    assert repo.count_by_sha("gamma", "aa" * 32) == 0


def test_mark_deleted_returns_the_record_as_it_was_and_is_idempotent(
        repo: DocumentRepository) -> None:
    document = make_document(updated_at=repositories.now_ms() - timedelta(hours=1))
    repo.upsert(document)
    before = repo.mark_deleted("acme", document.document_id)
    assert before == document
    after = repo.get("acme", document.document_id)
    assert after is not None
    assert after.deleted
    assert after.updated_at > document.updated_at
    assert after.model_copy(update={"deleted": False, "updated_at": document.updated_at}
                            ) == document
    again = repo.mark_deleted("acme", document.document_id)
    assert again is not None
    assert again.deleted
    stored = repo.get("acme", document.document_id)
    assert stored is not None
    assert stored.deleted


def test_mark_deleted_of_a_missing_document_is_none(repo: DocumentRepository) -> None:
    assert repo.mark_deleted("acme", "doc_missing") is None
    assert repo.get("acme", "doc_missing") is None


def test_upsert_brings_a_deleted_document_back(repo: DocumentRepository) -> None:
    document = make_document()
    repo.upsert(document)
    repo.mark_deleted("acme", document.document_id)
    repo.upsert(document)
    assert repo.get("acme", document.document_id) == document
    assert repo.count_by_sha("acme", document.sha256) == 1


def test_count_by_sha_counts_live_documents_of_the_tenant(repo: DocumentRepository) -> None:
    sha = "cc" * 32
    for source in ("one", "two", "three"):
        repo.upsert(make_document(source, sha256=sha))
    repo.upsert(make_document("other", sha256="dd" * 32))
    repo.upsert(make_document("elsewhere", tenant="beta", sha256=sha))
    assert repo.count_by_sha("acme", sha) == 3
    repo.mark_deleted("acme", document_id("acme", "two"))
    assert repo.count_by_sha("acme", sha) == 2
    repo.mark_deleted("acme", document_id("acme", "two"))
    assert repo.count_by_sha("acme", sha) == 2
    repo.mark_deleted("acme", document_id("acme", "one"))
    repo.mark_deleted("acme", document_id("acme", "three"))
    assert repo.count_by_sha("acme", sha) == 0
    assert repo.count_by_sha("beta", sha) == 1
    assert repo.count_by_sha("acme", "ee" * 32) == 0


def test_datetimes_round_trip_timezone_aware(repo: DocumentRepository) -> None:
    tokyo = timezone(timedelta(hours=9))
    created = datetime(2026, 5, 4, 9, 15, 0, 987654, tzinfo=tokyo)
    document = make_document(created_at=created, updated_at=created)
    repo.upsert(document)
    stored = repo.get("acme", document.document_id)
    assert stored is not None
    for value in (stored.created_at, stored.updated_at):
        assert value.tzinfo is not None
        assert abs(value - created) < timedelta(milliseconds=1)
    assert stored.created_at.astimezone(UTC).replace(microsecond=0) == datetime(
        2026, 5, 4, 0, 15, 0, tzinfo=UTC)


def test_mongo_gives_document_datetimes_back_in_utc(mongo_url: str,
                                                     mongo_database_name: str) -> None:
    repo = MongoDocumentRepository(mongo_url, mongo_database_name, repositories.TEST_TIMEOUT_MS)
    try:
        created = datetime(2026, 5, 4, 9, 15, 0, 987654, tzinfo=timezone(timedelta(hours=9)))
        repo.upsert(make_document(created_at=created, updated_at=created))
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
        for call in (lambda: repo.get("acme", "doc_x"), lambda: repo.upsert(make_document()),
                     lambda: repo.count_by_sha("acme", "aa")):
            started = time.monotonic()
            with pytest.raises(TransientError) as caught:
                call()
            assert time.monotonic() - started < 5
            assert f"127.0.0.1:{port}" in str(caught.value)
            assert "t0p-secret" not in str(caught.value)
    finally:
        repo.close()
