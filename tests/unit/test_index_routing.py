"""The routed index: reads from the tenant's active index, writes to it and to the one a
re-index is filling, each target built once and under its own table or namespace name."""

from adapters.memory.fakes import MemoryIndexRegistry, MemoryVectorIndex
from adapters.routing.vector_index import RoutedVectorIndex
from domain.documents import VectorRecord
from domain.indexes import IndexRoute, IndexTarget, parse_target

NEW = parse_target("pinecone:http://127.0.0.1:1#acme-v2")


def record(vector_id: str) -> VectorRecord:
    return VectorRecord(id=vector_id, values=[1.0, 0.0], metadata={"document_id": "d"})


def routed() -> tuple[RoutedVectorIndex, MemoryVectorIndex, dict[str, MemoryVectorIndex],
                      MemoryIndexRegistry]:
    default, built, registry = MemoryVectorIndex(), {}, MemoryIndexRegistry()

    def build(target: IndexTarget) -> MemoryVectorIndex:
        built[target.spec] = MemoryVectorIndex()
        return built[target.spec]

    return RoutedVectorIndex(default, registry, build), default, built, registry


def test_without_a_route_everything_is_the_settings_index() -> None:
    index, default, built, _ = routed()
    index.upsert_vector("acme", [record("d#0")])
    assert default.list_ids("acme") == ["d#0"]
    assert index.list_ids("acme") == ["d#0"]
    assert built == {}


def test_while_building_writes_reach_both_and_reads_stay_on_the_active_index() -> None:
    index, default, built, registry = routed()
    index.upsert_vector("acme", [record("d#0")])
    registry.put_route(IndexRoute(tenant="acme", building=NEW), None)

    index.upsert_vector("acme", [record("d#1")])
    index.delete_ids("acme", ["d#0"])

    new = built[NEW.spec]
    assert default.list_ids("acme") == ["d#1"]
    assert new.list_ids("acme-v2") == ["d#1"]  # the target's own namespace name
    assert index.count("acme") == 1
    assert [hit.id for hit in index.semantic_search("acme", [1.0, 0.0], 5)] == ["d#1"]
    assert index.list_ids("other") == []  # another tenant is not routed

    registry.put_route(IndexRoute(tenant="acme", active=NEW), 1)
    index.upsert_vector("acme", [record("d#2")])
    assert index.list_ids("acme") == ["d#1", "d#2"]
    assert default.list_ids("acme") == ["d#1"]  # the old index is left as it was
    assert len(built) == 1
