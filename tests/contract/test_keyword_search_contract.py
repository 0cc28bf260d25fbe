"""The KeywordSearchable contract (the full-text side of a vector index), run against every
adapter that has one: the in-memory fake, LanceDB's own full-text index, and Pinecone's
sparse vectors through the SDK over HTTP on the fake data plane."""

import math
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import lancedb
import pytest

from adapters.lancedb.vector_index import TEXT_COLUMN, LanceDBVectorIndex, table_name
from adapters.memory.fakes import MemoryVectorIndex
from adapters.pinecone.hybrid_index import PineconeHybridIndex, PineconeSparseIndex
from adapters.pinecone.vector_index import PineconeVectorIndex
from adapters.ports import KeywordSearchable, VectorIndex
from domain.documents import VectorRecord
from tests.support.fake_pinecone import FakePinecone

DIM = 8


class Both(VectorIndex, KeywordSearchable):
    """For type checking only: an index with a full-text side."""


@pytest.fixture(scope="module")
def fake_pinecones() -> Iterator[tuple[FakePinecone, FakePinecone]]:
    with FakePinecone(dimension=DIM) as dense, FakePinecone(dimension=0, sparse=True) as sparse:
        yield dense, sparse


@pytest.fixture
def pinecone_index(fake_pinecones: tuple[FakePinecone, FakePinecone]
                   ) -> Iterator[PineconeHybridIndex]:
    """The dense and sparse Pinecone indexes through the SDK over HTTP, emptied."""
    dense, sparse = fake_pinecones
    dense.reset()
    sparse.reset()
    options = {"retry_backoff": 0.001, "retry_max_wait": 0.01}
    index = PineconeHybridIndex(
        PineconeVectorIndex(dense.api_key, dense.url, DIM, **options),
        PineconeSparseIndex(sparse.api_key, sparse.url, **options))
    yield index
    index.close()


@pytest.fixture(params=["memory", "lancedb", "pinecone"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Both:
    if request.param == "memory":
        return cast(Both, MemoryVectorIndex())
    if request.param == "pinecone":
        return cast(Both, request.getfixturevalue("pinecone_index"))
    return cast(Both, LanceDBVectorIndex(tmp_path / "vectors", DIM))


def axis(n: int) -> list[float]:
    values = [0.0] * DIM
    values[n % DIM] = 1.0
    return values


def record(vector_id: str, text: str, values: list[float] | None = None,
           **metadata: object) -> VectorRecord:
    document = vector_id.split(".")[0]
    return VectorRecord.model_validate({
        "id": vector_id, "values": values or axis(0), "text": text,
        "metadata": {"document_id": document, "chunk_index": 0, **metadata}})


FILLER = [
    "The heat pump moves warmth from outside air into the house in winter.",
    "Descaling an espresso machine keeps the boiler free of limescale.",
    "Tubeless tyres seal small punctures with liquid sealant.",
    "Sourdough needs a lively starter and a long, cool proof.",
    "A password manager stores one strong password per site.",
    "Composting works best with a mix of green and brown material.",
]


def test_implements_the_port(index: Both) -> None:
    assert isinstance(index, KeywordSearchable)
    assert isinstance(index, VectorIndex)


def test_pinecone_sends_sparse_vectors_to_the_sparse_index_only(
        pinecone_index: PineconeHybridIndex,
        fake_pinecones: tuple[FakePinecone, FakePinecone]) -> None:
    dense, sparse = fake_pinecones
    pinecone_index.upsert_vector("t", [record("a.v#0", "relay K7 stays silent"),
                                       record("b.v#0", "the of and")])  # no words: no sparse
    assert dense.ids("t") == ["a.v#0", "b.v#0"]
    assert sparse.ids("t") == ["a.v#0"]
    # The sparse fake refuses dense values and requires sparseValues, like a sparse index.
    [upsert] = sparse.requests("/vectors/upsert")
    assert upsert.vector_count == 1
    assert [h.id for h in pinecone_index.keyword_search("t", "K7", 5)] == ["a.v#0"]


def test_an_exact_term_finds_its_chunk_when_the_vector_search_misses_it(index: Both) -> None:
    records = [record(f"d{n}.v#0", FILLER[n % len(FILLER)], axis(0)) for n in range(30)]
    records.append(record("needle.v#0", "If the display shows E24 check the drain hose "
                          "for the part number WPW10321304.", axis(4)))
    index.upsert_vector("t", records)

    nearest = index.semantic_search("t", axis(0), top_k=10)
    assert "needle.v#0" not in [hit.id for hit in nearest]
    for query in ("WPW10321304", "what does E24 mean", "wpw10321304 e24"):
        hits = index.keyword_search("t", query, top_k=5)
        assert hits, query
        assert hits[0].id == "needle.v#0", query
        assert hits[0].metadata["document_id"] == "needle"


def test_best_first_at_most_top_k_and_only_matching_texts(index: Both) -> None:
    index.upsert_vector("t", [
        record("a.v#0", "limescale limescale limescale in the boiler"),
        record("b.v#0", "a little limescale in the kettle and plenty of other words here"),
        record("c.v#0", "sourdough starter"),
        record("d.v#0", ""),  # no text: never a keyword hit
    ])
    hits = index.keyword_search("t", "limescale", top_k=5)
    assert [h.id for h in hits] == ["a.v#0", "b.v#0"]
    assert hits[0].score >= hits[1].score > 0
    assert len(index.keyword_search("t", "limescale", top_k=1)) == 1
    assert index.keyword_search("t", "limescale", top_k=0) == []
    assert index.keyword_search("t", "zeppelin", top_k=5) == []
    assert index.keyword_search("t", "the of and", top_k=5) == []  # stopwords only


def test_query_syntax_is_plain_words(index: Both) -> None:
    index.upsert_vector("t", [record("a.v#0", "error code E24 on the dishwasher")])
    for query in ('"E24" OR (dishwasher)', "E24 AND NOT x", "e24'; DROP TABLE t; --",
                  "dishwasher*", "+e24 -x ~ ^2", "?!"):
        hits = index.keyword_search("t", query, top_k=5)
        assert [h.id for h in hits] in (["a.v#0"], []), query
    assert index.keyword_search("t", '"E24" OR (dishwasher)', top_k=5)[0].id == "a.v#0"


def test_tenants_and_filters(index: Both) -> None:
    index.upsert_vector("t1", [record("a.v#0", "kettle descaling", source="cli"),
                               record("b.v#0", "kettle repair", source="api")])
    index.upsert_vector("t2", [record("c.v#0", "kettle of the other tenant")])
    assert {h.id for h in index.keyword_search("t1", "kettle", top_k=10)} == {"a.v#0", "b.v#0"}
    assert [h.id for h in index.keyword_search("t2", "kettle", top_k=10)] == ["c.v#0"]
    assert index.keyword_search("nobody", "kettle", top_k=10) == []
    assert [h.id for h in index.keyword_search("t1", "kettle", 10, {"source": "api"})] == [
        "b.v#0"]
    assert [h.id for h in index.keyword_search("t1", "kettle", 10,
                                               {"document_id": ["a", "x"]})] == ["a.v#0"]
    assert index.keyword_search("t1", "kettle", 10, {"source": []}) == []


def test_upsert_replaces_text_and_deletes_remove_it(index: Both) -> None:
    index.upsert_vector("t", [record("a.v#0", "old words about kettles"),
                              record("b.v#0", "kettles again"),
                              record("b.v#1", "kettles thrice")])
    index.upsert_vector("t", [record("a.v#0", "new words about teapots")])
    assert [h.id for h in index.keyword_search("t", "teapots", 5)] == ["a.v#0"]
    assert "a.v#0" not in [h.id for h in index.keyword_search("t", "kettles", 5)]
    index.delete_ids("t", ["b.v#1"])
    assert [h.id for h in index.keyword_search("t", "kettles", 5)] == ["b.v#0"]
    index.delete_document("t", "b")
    assert index.keyword_search("t", "kettles", 5) == []


def test_lancedb_text_index_survives_optimize_and_a_new_process(tmp_path: Path) -> None:
    first = LanceDBVectorIndex(tmp_path, DIM)
    first.upsert_vector("t", [record("a.v#0", "the relay K3 clicks twice")])
    first.upsert_vector("t", [record("b.v#0", "relay K7 stays silent")])  # not yet indexed
    assert {h.id for h in first.keyword_search("t", "relay", 5)} == {"a.v#0", "b.v#0"}
    assert first.optimize() == 1
    again = LanceDBVectorIndex(tmp_path, DIM)
    assert [h.id for h in again.keyword_search("t", "K7", 5)] == ["b.v#0"]
    indices = lancedb.connect(tmp_path).open_table(table_name("t")).list_indices()
    assert [i.index_type for i in indices if TEXT_COLUMN in i.columns] == ["FTS"]


def test_lancedb_table_made_before_the_text_column_gets_it(tmp_path: Path) -> None:
    import pyarrow as pa

    old_schema = pa.schema([f for f in LanceDBVectorIndex(tmp_path, DIM)._schema()
                            if f.name != TEXT_COLUMN])
    db = lancedb.connect(tmp_path)
    row = {"id": "old.v#0", "vector": [math.sqrt(0.5)] * 2 + [0.0] * (DIM - 2),
           "document_id": "old", "chunk_index": 0, "source": None, "sha256": None,
           "keywords": None, "metadata_json": '{"document_id": "old", "chunk_index": 0}'}
    db.create_table(table_name("t"), data=[row], schema=old_schema)

    index = LanceDBVectorIndex(tmp_path, DIM)
    assert index.keyword_search("t", "anything", 5) == []  # no text yet: no hits, no error
    assert [h.id for h in index.semantic_search("t", row["vector"], 5)] == ["old.v#0"]
    index.upsert_vector("t", [record("new.v#0", "a chunk with words")])
    assert [h.id for h in index.keyword_search("t", "words", 5)] == ["new.v#0"]
    assert index.count("t") == 2
