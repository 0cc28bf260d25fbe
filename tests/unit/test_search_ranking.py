"""Search quality on the labelled set in tests/data/search, vector-only against hybrid.

Ingests the documents through the pipeline with the local embedder (MiniLM on ONNX) and the
local keyword extractor (YAKE), then runs every labelled query both ways and computes, at the
document level, MRR@10 (mean reciprocal rank of the expected document among the first ten
hits) and recall@5 (share of queries whose expected document is among the first five).
Hybrid must not be worse than vector-only on either. Run with -s to see the figures.
"""

import json
from pathlib import Path

import pytest

from adapters.onnx.embedder import OnnxEmbedder
from adapters.yake.keywords import YakeKeywords
from domain.status import JobStatus
from pipeline.producer import enqueue, file_event
from pipeline.search import SearchFilters, search
from tests.support.inline import memory_services

DATA = Path(__file__).resolve().parents[1] / "data" / "search"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    services = memory_services(tmp_path_factory.mktemp("ranking"),
                               adapters={"embedder": OnnxEmbedder(), "keywords": YakeKeywords()})
    ids = {}
    for path in sorted(DATA.iterdir()):
        if path.name == "queries.json":
            continue
        job = services.jobs.get(enqueue(services, file_event(path, "eval", 10**6)).job_id)
        assert job.status is JobStatus.DONE, job.error
        ids[job.document_id] = path.name
    return services, ids


def metrics(services, ids, ranking: str) -> tuple[float, float]:
    queries = json.loads((DATA / "queries.json").read_text())["queries"]
    reciprocal, found = 0.0, 0
    for item in queries:
        hits = search(services, "eval", item["query"], top_k=10, ranking=ranking)
        ranked = list(dict.fromkeys(ids[hit.document_id] for hit in hits))
        if item["expected"] in ranked[:10]:
            reciprocal += 1 / (ranked.index(item["expected"]) + 1)
        found += item["expected"] in ranked[:5]
    return reciprocal / len(queries), found / len(queries)


def test_hybrid_ranking_is_not_worse_than_vector_only(corpus):
    services, ids = corpus
    vector_mrr, vector_recall = metrics(services, ids, "vector")
    hybrid_mrr, hybrid_recall = metrics(services, ids, "hybrid")
    print(f"\nvector-only  MRR@10 {vector_mrr:.3f}  recall@5 {vector_recall:.3f}"
          f"\nhybrid       MRR@10 {hybrid_mrr:.3f}  recall@5 {hybrid_recall:.3f}")

    assert hybrid_mrr >= vector_mrr
    assert hybrid_recall >= vector_recall
    assert vector_mrr > 0.5  # the set is answerable: a broken search would not pass


def test_filters_snippets_and_provenance(corpus):
    services, ids = corpus
    by_name = {name: doc for doc, name in ids.items()}
    dishwasher = by_name["dishwasher-error-codes.md"]

    [hit] = search(services, "eval", "water does not drain", top_k=1,
                   filters=SearchFilters(document_id=dishwasher))
    assert hit.document_id == dishwasher
    assert hit.section is not None
    assert "drain" in hit.snippet
    assert hit.content_type == "text/markdown"
    assert hit.text[:20] in hit.text
    assert hit.start is not None
    assert hit.end is not None

    text_only = search(services, "eval", "water", top_k=20,
                       filters=SearchFilters(content_type="text/plain"))
    assert text_only
    assert {ids[h.document_id] for h in text_only} <= {n for n in ids.values()
                                                      if n.endswith(".txt")}
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    assert search(services, "eval", "water", top_k=5,
                  filters=SearchFilters(ingested_after=now + timedelta(hours=1))) == []
    assert search(services, "eval", "water", top_k=5,
                  filters=SearchFilters(ingested_before=now + timedelta(hours=1)))
    keyword = services.documents.get("eval", dishwasher).keywords[0]
    keyed = search(services, "eval", "water", top_k=10, filters=SearchFilters(keyword=keyword))
    assert keyed
    assert all(keyword in h.keywords for h in keyed)
