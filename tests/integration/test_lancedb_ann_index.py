"""LanceDBVectorIndex's approximate index: built by the compaction once a table is big enough,
never by an upsert; rows added after it are still found; trained again as the table grows;
filtered searches still find every match; a tenant's search never reaches another tenant."""

from pathlib import Path

import numpy as np
import pytest

from adapters.lancedb.vector_index import LanceDBVectorIndex
from domain.documents import VectorRecord

DIM = 32
MIN_ROWS = 400


def _records(rng: np.random.Generator, start: int, count: int,
             document: str = "doc") -> tuple[list[VectorRecord], np.ndarray]:
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = [VectorRecord(id=f"{document}_{(start + n) // 10}#{(start + n) % 10}",
                            values=vectors[n].tolist(),
                            metadata={"document_id": f"{document}_{(start + n) // 10}",
                                      "chunk_index": (start + n) % 10})
               for n in range(count)]
    return records, vectors


@pytest.fixture
def index(tmp_path: Path) -> LanceDBVectorIndex:
    return LanceDBVectorIndex(tmp_path / "vectors", DIM, ann_min_rows=MIN_ROWS,
                              ann_nprobes=8, ann_refine_factor=10, ann_retrain_growth=2.0)


def test_the_compaction_builds_the_index_once_the_table_is_big_enough(
        index: LanceDBVectorIndex) -> None:
    rng = np.random.default_rng(1)
    records, _ = _records(rng, 0, MIN_ROWS - 1)
    index.upsert_vector("acme", records)
    index.optimize("acme")
    assert index.ann_status("acme") == (MIN_ROWS - 1, None)

    more, _ = _records(rng, MIN_ROWS - 1, 1)
    index.upsert_vector("acme", more)
    assert index.ann_status("acme") == (MIN_ROWS, None)  # an upsert never builds it
    index.optimize("acme")
    assert index.ann_status("acme") == (MIN_ROWS, MIN_ROWS)


def test_rows_added_after_the_index_are_found_and_the_index_is_trained_again(
        index: LanceDBVectorIndex) -> None:
    rng = np.random.default_rng(2)
    records, vectors = _records(rng, 0, MIN_ROWS)
    index.upsert_vector("acme", records)
    index.optimize("acme")
    later, later_vectors = _records(rng, MIN_ROWS, 50)
    index.upsert_vector("acme", later)

    for record, vector in zip(later[:10], later_vectors[:10], strict=True):
        hits = index.semantic_search("acme", vector.tolist(), 1)
        assert [hit.id for hit in hits] == [record.id]
    for record, vector in zip(records[:10], vectors[:10], strict=True):
        hits = index.semantic_search("acme", vector.tolist(), 1)
        assert [hit.id for hit in hits] == [record.id]

    index.optimize("acme")  # folds the new rows in without training again
    rows, indexed = index.ann_status("acme")
    assert rows == MIN_ROWS + 50
    assert indexed is not None
    assert indexed >= MIN_ROWS

    grown, _ = _records(rng, MIN_ROWS + 50, MIN_ROWS + 50)
    index.upsert_vector("acme", grown)
    index.optimize("acme")  # twice the rows it was trained on: trained again on all
    assert index.ann_status("acme") == (2 * MIN_ROWS + 100, 2 * MIN_ROWS + 100)


def test_a_filtered_search_finds_every_match_through_the_index(
        index: LanceDBVectorIndex) -> None:
    rng = np.random.default_rng(3)
    records, _ = _records(rng, 0, MIN_ROWS)
    index.upsert_vector("acme", records)
    index.optimize("acme")
    assert index.ann_status("acme")[1] == MIN_ROWS

    query = rng.standard_normal(DIM).tolist()
    hits = index.semantic_search("acme", query, 20, {"document_id": "doc_7"})
    assert sorted(hit.id for hit in hits) == [f"doc_7#{n}" for n in range(10)]


def test_an_indexed_tenant_and_a_small_one_stay_apart(index: LanceDBVectorIndex) -> None:
    rng = np.random.default_rng(4)
    big, _ = _records(rng, 0, MIN_ROWS, document="big")
    small, small_vectors = _records(rng, 0, 20, document="small")
    index.upsert_vector("acme", big)
    index.upsert_vector("globex", small)
    assert index.optimize() == 2
    assert index.ann_status("acme")[1] == MIN_ROWS
    assert index.ann_status("globex") == (20, None)

    hits = index.semantic_search("globex", small_vectors[0].tolist(), 30)
    assert {hit.id for hit in hits} == {record.id for record in small}
    hits = index.semantic_search("acme", small_vectors[0].tolist(), 30)
    assert all(hit.id.startswith("big_") for hit in hits)


def test_no_index_when_the_threshold_is_zero(tmp_path: Path) -> None:
    index = LanceDBVectorIndex(tmp_path / "vectors", DIM, ann_min_rows=0)
    records, _ = _records(np.random.default_rng(5), 0, MIN_ROWS)
    index.upsert_vector("acme", records)
    index.optimize("acme")
    assert index.ann_status("acme") == (MIN_ROWS, None)
