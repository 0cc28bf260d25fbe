"""The VectorIndex contract, run against every adapter of the port (plus LanceDB specifics)."""

import math
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import cast

import lancedb
import pytest

from adapters.lancedb.vector_index import LanceDBVectorIndex, compile_filter, table_name
from adapters.memory.fakes import MemoryVectorIndex
from adapters.pinecone.vector_index import PineconeVectorIndex
from adapters.ports import AddsNewVectors, MetadataFilter, VectorIndex
from domain.documents import VectorRecord
from domain.errors import PermanentError
from domain.filters import Range, matches
from domain.metadata import as_date_seconds
from tests.support.fake_pinecone import FakePinecone

DIM = 8
DAY_ONE = as_date_seconds("2024-05-01") or 0


@pytest.fixture(scope="module")
def fake_pinecone() -> Iterator[FakePinecone]:
    with FakePinecone(dimension=DIM) as fake:
        yield fake


@pytest.fixture
def pinecone_index(fake_pinecone: FakePinecone) -> Iterator[PineconeVectorIndex]:
    """The Pinecone adapter, through the SDK over HTTP, on an emptied fake data plane."""
    fake_pinecone.reset()
    adapter = PineconeVectorIndex(fake_pinecone.api_key, fake_pinecone.url, DIM,
                                  retry_backoff=0.001, retry_max_wait=0.01)
    yield adapter
    adapter.close()


@pytest.fixture(params=["memory", "lancedb", "pinecone"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> VectorIndex:
    if request.param == "memory":
        return MemoryVectorIndex()
    if request.param == "pinecone":
        return cast(VectorIndex, request.getfixturevalue("pinecone_index"))
    return LanceDBVectorIndex(tmp_path / "vectors", DIM)


def unit(values: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def axis(n: int, lean: float = 0.0) -> list[float]:
    """A unit vector along axis ``n``, leaning towards the next axis by ``lean``."""
    values = [0.0] * DIM
    values[n % DIM] = 1.0
    values[(n + 1) % DIM] = lean
    return unit(values)


def record(vector_id: str, values: list[float], **metadata: object) -> VectorRecord:
    return VectorRecord.model_validate({"id": vector_id, "values": values, "metadata": metadata})


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_implements_the_port(index: VectorIndex) -> None:
    assert isinstance(index, VectorIndex)


def test_empty_or_unknown_tenant(index: VectorIndex) -> None:
    assert index.semantic_search("nobody", axis(0), top_k=5) == []
    assert index.count("nobody") == 0
    assert index.list_ids("nobody") == []
    index.delete_ids("nobody", ["x"])
    index.delete_document("nobody", "doc")
    assert index.count("nobody") == 0


def test_search_returns_best_first_at_most_top_k(index: VectorIndex) -> None:
    index.upsert_vector("acme", [record(f"v{n}", axis(0, lean=n / 10), n=n) for n in range(8)])
    hits = index.semantic_search("acme", axis(0), top_k=3)
    assert [hit.id for hit in hits] == ["v0", "v1", "v2"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    for hit in hits:
        n = hit.metadata["n"]
        assert isinstance(n, int)
        assert hit.score == pytest.approx(cosine(axis(0), axis(0, n / 10)), abs=1e-5)
    assert len(index.semantic_search("acme", axis(0), top_k=100)) == 8


def test_hits_carry_exactly_the_upserted_metadata(index: VectorIndex) -> None:
    metadata = {"document_id": "doc_1", "chunk_index": 3, "source": "s3://b/k.pdf",
                "sha256": "ab" * 32, "keywords": ["lancedb", "vector search"],
                "score_hint": 0.25, "public": True, "title": "It's a \"quote\" \\ test%_"}
    index.upsert_vector("acme", [record("doc_1#3", axis(1), **metadata)])
    (hit,) = index.semantic_search("acme", axis(1), top_k=1)
    assert hit.id == "doc_1#3"
    assert hit.metadata == metadata


def test_upserting_the_same_id_again_replaces_it(index: VectorIndex) -> None:
    index.upsert_vector("acme", [record("a", axis(0), v=1), record("b", axis(1), v=1)])
    index.upsert_vector("acme", [record("a", axis(2), v=2)])
    assert index.count("acme") == 2
    hits = index.semantic_search("acme", axis(2), top_k=5)
    assert hits[0].id == "a"
    assert hits[0].metadata == {"v": 2}
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    # The same id twice in one call: one vector, the last one.
    index.upsert_vector("acme", [record("c", axis(3), v=1), record("c", axis(4), v=2)])
    assert index.count("acme") == 3
    assert index.list_ids("acme") == ["a", "b", "c"]
    (hit,) = index.semantic_search("acme", axis(4), top_k=1)
    assert (hit.id, hit.metadata) == ("c", {"v": 2})
    # A retried batch changes nothing.
    batch = [record(f"r{n}", axis(n), v=n) for n in range(5)]
    index.upsert_vector("acme", batch)
    index.upsert_vector("acme", batch)
    assert index.count("acme") == 8


def test_tenants_are_isolated(index: VectorIndex) -> None:
    index.upsert_vector("tenant-a", [record("doc#0", axis(0), document_id="doc", owner="a")])
    index.upsert_vector("tenant-b", [record("doc#0", axis(0), document_id="doc", owner="b"),
                                     record("doc#1", axis(1), document_id="doc", owner="b")])
    (hit,) = index.semantic_search("tenant-a", axis(0), top_k=10)
    assert hit.metadata["owner"] == "a"
    assert {h.metadata["owner"] for h in index.semantic_search("tenant-b", axis(0), 10)} == {"b"}
    assert (index.count("tenant-a"), index.count("tenant-b")) == (1, 2)
    index.delete_document("tenant-b", "doc")
    index.delete_ids("tenant-b", ["doc#0"])
    assert index.count("tenant-b") == 0
    assert index.count("tenant-a") == 1
    assert index.list_ids("tenant-a") == ["doc#0"]


def _corpus() -> list[VectorRecord]:
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    records = []
    for n in range(120):
        metadata: dict[str, object] = {
            "document_id": f"doc_{n % 6}",
            "chunk_index": n % 7,
            "source": f"src/{n % 3}.md",
            "sha256": f"{n % 4:064x}",
            "keywords": rng.sample(words, k=rng.randint(0, 3)),
            "lang": "en" if n % 5 else "de",
            "public": n % 2 == 0,
            # custom metadata as the pipeline stores it: numbers, dates as Unix seconds, lists
            "year": 2018 + n % 7,
            "published": DAY_ONE + (n % 30) * 86_400,
            "rating": (n % 9) / 4,
            "team": ["legal", "ops", "research"][n % 3],
            "tags": [f"t{n % 4}", f"t{n % 5}"],
        }
        if n % 13 == 0:
            del metadata["year"]
        if n % 11 == 0:
            del metadata["keywords"]
        records.append(record(f"doc_{n % 6}#{n}", unit([rng.gauss(0, 1) for _ in range(DIM)]),
                              **metadata))
    return records


# ``MetadataFilter``'s type allows only lists of strings; lists of ints are here because
# ``domain.filters.matches`` gives them a meaning (one of) and adapters must agree with it.
FILTERS: list[dict[str, object]] = [
    {"document_id": "doc_2"},
    {"document_id": ["doc_1", "doc_4", "missing"]},
    {"chunk_index": 3},
    {"chunk_index": [0, 6]},
    {"source": "src/1.md", "chunk_index": [1, 2, 3]},
    {"sha256": f"{2:064x}"},
    {"keywords": "gamma"},
    {"keywords": ["alpha", "epsilon"]},
    {"keywords": ["alpha"], "document_id": ["doc_0", "doc_3"]},
    {"lang": "de"},
    {"lang": ["de", "fr"], "keywords": "beta"},
    {"public": True},
    {"public": False, "document_id": "doc_5"},
    {"document_id": "it's; DROP TABLE x --"},
    {"document_id": []},
    {"keywords": []},
    {"unknown_field": "x"},
    {"chunk_index": "3"},
    # custom metadata: equality, one of, numeric and date ranges, and mixes with the system's
    {"team": "legal"},
    {"team": ["ops", "research"], "lang": "de"},
    {"year": 2020},
    {"year": [2019, 2023, 2030]},
    {"tags": "t3"},
    {"tags": ["t0", "t4"], "team": "ops"},
    {"rating": 0.5},
    {"year": Range(gte=2020, lte=2022)},
    {"year": Range(gt=2020, lt=2022)},
    {"rating": Range(gt=1.0)},
    {"rating": Range(lte=0.25), "public": True},
    {"published": Range(gte=float(DAY_ONE + 10 * 86_400), lt=float(DAY_ONE + 20 * 86_400))},
    {"published": Range(lte=float(DAY_ONE)), "team": ["legal"]},
    {"chunk_index": Range(gte=2, lt=5)},
    {"chunk_index": Range(gt=5), "document_id": "doc_3"},
    {"year": Range(gte=2021), "chunk_index": [1, 2], "keywords": "beta"},
    {"source": Range(gte=0)},
    {"keywords": Range(lte=10)},
    {"public": Range(gte=0)},
    {"team": Range(gte=0)},
    {"missing_number": Range(gte=0)},
]


@pytest.mark.parametrize("metadata_filter", FILTERS, ids=[str(f) for f in FILTERS])
def test_filters_select_exactly_the_matching_vectors(
    index: VectorIndex, metadata_filter: MetadataFilter
) -> None:
    records = _corpus()
    index.upsert_vector("acme", records)
    query = unit([1.0, -0.5, 0.25, 0.0, 0.5, -1.0, 0.75, 0.1])
    expected = sorted(
        (r for r in records if matches(r.metadata, metadata_filter)),
        key=lambda r: -cosine(query, r.values),
    )
    hits = index.semantic_search("acme", query, top_k=500, metadata_filter=metadata_filter)
    assert [hit.id for hit in hits] == [r.id for r in expected]
    top = index.semantic_search("acme", query, top_k=3, metadata_filter=metadata_filter)
    assert [hit.id for hit in top] == [r.id for r in expected[:3]]


def test_filter_on_a_rare_value_still_fills_top_k(index: VectorIndex) -> None:
    # Many close vectors that do not match, three far ones that do.
    near = [record(f"near{n}", axis(0, lean=n / 1000), flag="no") for n in range(400)]
    far = [record(f"far{n}", axis(4, lean=n / 10), flag="yes") for n in range(3)]
    index.upsert_vector("acme", near + far)
    hits = index.semantic_search("acme", axis(0), top_k=3, metadata_filter={"flag": "yes"})
    assert sorted(hit.id for hit in hits) == ["far0", "far1", "far2"]


def test_delete_ids_and_documents_twice_is_fine(index: VectorIndex) -> None:
    index.upsert_vector("acme", [
        record("d1#0", axis(0), document_id="d1"), record("d1#1", axis(1), document_id="d1"),
        record("d2#0", axis(2), document_id="d2"), record("d3#0", axis(3), document_id="d3"),
    ])
    index.delete_ids("acme", ["d3#0", "never-was"])
    index.delete_ids("acme", ["d3#0", "never-was"])
    index.delete_ids("acme", [])
    assert index.list_ids("acme") == ["d1#0", "d1#1", "d2#0"]
    index.delete_document("acme", "d1")
    index.delete_document("acme", "d1")
    index.delete_document("acme", "never-was")
    assert index.list_ids("acme") == ["d2#0"]
    assert [hit.id for hit in index.semantic_search("acme", axis(0), top_k=10)] == ["d2#0"]


def test_list_ids_by_prefix_takes_the_prefix_literally(index: VectorIndex) -> None:
    ids = ["doc_1#0", "doc_1#1", "doc_10#0", "docx1#0", "doc%1#0", "it's#0"]
    index.upsert_vector("acme", [record(i, axis(n)) for n, i in enumerate(ids)])
    assert index.list_ids("acme") == sorted(ids)
    assert index.list_ids("acme", "doc_1#") == ["doc_1#0", "doc_1#1"]
    assert index.list_ids("acme", "doc_1") == ["doc_1#0", "doc_1#1", "doc_10#0"]
    assert index.list_ids("acme", "doc%") == ["doc%1#0"]
    assert index.list_ids("acme", "it's") == ["it's#0"]
    assert index.list_ids("acme", "nothing") == []


# -- the LanceDB adapter's own promises -------------------------------------------------------


@pytest.fixture
def lance(tmp_path: Path) -> LanceDBVectorIndex:
    return LanceDBVectorIndex(tmp_path / "vectors", DIM)


def test_lancedb_dimension_mismatch_names_both_dimensions(
    lance: LanceDBVectorIndex, tmp_path: Path
) -> None:
    with pytest.raises(PermanentError, match=r"dimension 3.*dimension 8"):
        lance.upsert_vector("acme", [record("a", [1.0, 0.0, 0.0])])
    with pytest.raises(PermanentError, match=r"dimension 3.*dimension 8"):
        lance.semantic_search("acme", [1.0, 0.0, 0.0], top_k=1)
    lance.upsert_vector("acme", [record("a", axis(0))])
    wider = LanceDBVectorIndex(tmp_path / "vectors", 16)
    with pytest.raises(PermanentError, match=r"dimension 8.*dimension 16"):
        wider.upsert_vector("acme", [record("b", [1.0] * 16)])
    assert lance.count("acme") == 1


def test_lancedb_refuses_wrongly_typed_column_metadata(lance: LanceDBVectorIndex) -> None:
    with pytest.raises(PermanentError, match="chunk_index"):
        lance.upsert_vector("acme", [record("a", axis(0), chunk_index="3")])
    with pytest.raises(PermanentError, match="keywords"):
        lance.upsert_vector("acme", [record("a", axis(0), keywords="one")])
    with pytest.raises(PermanentError, match="NaN"):
        lance.upsert_vector("acme", [record("a", [math.nan] * DIM)])
    with pytest.raises(PermanentError):
        lance.upsert_vector("", [record("a", axis(0))])
    assert lance.count("acme") == 0


def test_lancedb_one_table_per_tenant_with_safe_names(
    lance: LanceDBVectorIndex, tmp_path: Path
) -> None:
    for tenant in ["acme", "Acme", "../x", "a b"]:
        lance.upsert_vector(tenant, [record("a", axis(0), tenant=tenant)])
    names = set(lancedb.connect(tmp_path / "vectors").list_tables().tables)
    assert names == {table_name(t) for t in ["acme", "Acme", "../x", "a b"]}
    assert len(names) == 4
    assert table_name("acme") == "t_acme"
    for tenant in ["acme", "Acme", "../x", "a b"]:
        (hit,) = lance.semantic_search(tenant, axis(0), top_k=5)
        assert hit.metadata == {"tenant": tenant}


def test_lancedb_persists_and_optimize_keeps_data(
    lance: LanceDBVectorIndex, tmp_path: Path
) -> None:
    for n in range(5):  # five writes, five versions
        lance.upsert_vector("acme", [record(f"v{n}", axis(n), n=n)])
    lance.delete_ids("acme", ["v0"])
    assert lance.optimize() == 1
    assert lance.optimize("nobody") == 0
    again = LanceDBVectorIndex(tmp_path / "vectors", DIM)
    assert again.list_ids("acme") == ["v1", "v2", "v3", "v4"]
    assert [hit.id for hit in again.semantic_search("acme", axis(3), top_k=1)] == ["v3"]


def test_lancedb_writes_compact_the_table_once_it_holds_enough_fragments(tmp_path: Path) -> None:
    def fragments() -> int:
        table = lancedb.connect(tmp_path / "vectors").open_table(table_name("acme"))
        return int(table.stats()["fragment_stats"]["num_fragments"])

    index = LanceDBVectorIndex(tmp_path / "vectors", DIM, compact_after_fragments=8)
    for n in range(7):  # one fragment per write, under the threshold: left alone
        index.add_new_vectors("acme", [record(f"v{n}", axis(n % DIM), n=n)], lambda: True)
    assert fragments() == 7
    for n in range(7, 40):  # adds, upserts and deletes: compacted along the way
        index.upsert_vector("acme", [record(f"v{n}", axis(n % DIM), n=n)])
        if n % 5 == 0:
            index.delete_ids("acme", [f"v{n - 1}"])
    assert fragments() < 8
    deleted = {f"v{n - 1}" for n in range(7, 40) if n % 5 == 0}
    assert index.list_ids("acme") == sorted({f"v{n}" for n in range(40)} - deleted)
    never = LanceDBVectorIndex(tmp_path / "other", DIM, compact_after_fragments=0)
    for n in range(12):
        never.upsert_vector("acme", [record(f"v{n}", axis(n % DIM), n=n)])
    table = lancedb.connect(tmp_path / "other").open_table(table_name("acme"))
    assert int(table.stats()["fragment_stats"]["num_fragments"]) == 12


def test_compile_filter_quotes_and_short_circuits() -> None:
    assert compile_filter(None) == (None, False)
    assert compile_filter({"document_id": "it's"}) == ("document_id IN ('it''s')", False)
    assert compile_filter({"keywords": ["a", "b"], "lang": "en"}) == (
        "array_has_any(keywords, make_array('a', 'b'))", True)
    assert compile_filter(cast(MetadataFilter, {"chunk_index": [True, 2.0, 2.5, "3"]})) == (
        "chunk_index IN (1, 2)", False)
    assert compile_filter({"document_id": []}) is None
    assert compile_filter({"chunk_index": "3"}) is None


def test_adding_new_vectors_appends_when_fresh_and_upserts_when_not(tmp_path: Path) -> None:
    index = LanceDBVectorIndex(tmp_path / "vectors", DIM)
    assert isinstance(index, AddsNewVectors)
    asked: list[str] = []

    def fresh(answer: bool) -> Callable[[], bool]:
        def ask() -> bool:
            asked.append("asked")
            return answer
        return ask

    index.add_new_vectors("acme", [record("d.v1#0", axis(0), v=1),
                                   record("d.v1#1", axis(1), v=1)], fresh(True))
    assert index.list_ids("acme") == ["d.v1#0", "d.v1#1"]
    # Not fresh (a second run of the same version): an upsert, no duplicate rows.
    index.add_new_vectors("acme", [record("d.v1#0", axis(2), v=2)], fresh(False))
    assert index.count("acme") == 2
    (hit,) = index.semantic_search("acme", axis(2), top_k=1)
    assert (hit.id, hit.metadata["v"]) == ("d.v1#0", 2)
    assert asked == ["asked", "asked"]
