"""The IndexRegistry contract (adapters/ports.py), on the memory and MongoDB adapters."""

from collections.abc import Iterator
from datetime import timedelta

import pytest

from adapters.memory.fakes import MemoryIndexRegistry
from adapters.mongodb.indexes import MongoIndexRegistry
from adapters.ports import IndexRegistry
from domain.indexes import IndexRoute, ReindexRun, parse_target
from tests.support import repositories

TARGET = parse_target("pinecone:http://127.0.0.1:1#acme-v2")


@pytest.fixture(params=repositories.KINDS)
def registry(request: pytest.FixtureRequest) -> Iterator[IndexRegistry]:
    if request.param == "memory":
        yield MemoryIndexRegistry()
        return
    mongo = MongoIndexRegistry(request.getfixturevalue("mongo_url"),
                               request.getfixturevalue("mongo_database_name"),
                               repositories.TEST_TIMEOUT_MS)
    try:
        yield mongo
    finally:
        mongo.close()


def test_routes_are_compare_and_set_on_the_revision(registry: IndexRegistry) -> None:
    assert isinstance(registry, IndexRegistry)
    assert registry.get_route("acme") is None
    first = registry.put_route(IndexRoute(tenant="acme", building=TARGET), None)
    assert first is not None
    assert first.revision == 1
    assert registry.put_route(IndexRoute(tenant="acme"), None) is None  # one exists
    switched = registry.put_route(first.model_copy(update={"active": TARGET, "building": None}),
                                  1)
    assert switched == IndexRoute(tenant="acme", active=TARGET, revision=2)
    assert registry.put_route(first, 1) is None  # a stale writer loses
    assert registry.get_route("acme") == switched
    assert registry.get_route("other") is None


def test_the_latest_run_of_a_tenant_is_kept_by_id(registry: IndexRegistry) -> None:
    now = repositories.now_ms()
    old = ReindexRun(run_id="r1", tenant="acme", target=TARGET, state="done",
                     started_at=now - timedelta(hours=1), updated_at=now)
    new = ReindexRun(run_id="r2", tenant="acme", target=TARGET, started_at=now,
                     updated_at=now)
    registry.save_run(old)
    registry.save_run(new)
    progressed = new.model_copy(update={"last_document_id": "doc_b", "documents_copied": 2})
    registry.save_run(progressed)
    assert registry.get_run("acme") == progressed
    assert registry.get_run("other") is None
