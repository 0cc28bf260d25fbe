"""The Pinecone adapter through the real ``pinecone`` SDK over HTTP, against the fake data-plane
server: batching within Pinecone's limits, namespaces per tenant, filters, deletes, counts,
listing, 429/5xx/401/400 translation, the SDK's bounded retries and the dimension check."""

import email.utils
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.memory.fakes import MemoryVectorIndex
from adapters.pinecone.vector_index import PineconeVectorIndex
from domain.documents import VectorRecord
from domain.errors import ConfigurationError, PermanentError, TransientError
from tests.support.fake_pinecone import (
    MAX_IDS_PER_REQUEST,
    MAX_REQUEST_BYTES,
    MAX_UPSERT_VECTORS,
    FakePinecone,
)
from tests.support.sockets import connections_to, new_connections_in_a_fork, port_of

pytestmark = pytest.mark.integration

DIM = 8
KEY = "pc-test-key-0123456789"
ROOT = Path(__file__).resolve().parents[2]
#: Small SDK retry waits keep the storms fast; 2 retries differ from the SDK's default of 3.
FAST = {"retries": 2, "retry_backoff": 0.001, "retry_max_wait": 0.01, "timeout": 5}


@pytest.fixture(scope="module")
def server() -> Iterator[FakePinecone]:
    with FakePinecone(dimension=DIM, api_key=KEY) as fake:
        yield fake


@pytest.fixture
def fake(server: FakePinecone) -> FakePinecone:
    server.reset()  # also refills the SDK's process-wide retry budget
    return server


@pytest.fixture
def index(fake: FakePinecone) -> Iterator[PineconeVectorIndex]:
    adapter = PineconeVectorIndex(KEY, fake.url, DIM, **FAST)
    yield adapter
    adapter.close()


def unit(i: int, dim: int = DIM) -> list[float]:
    """A distinct, non-zero vector per i."""
    rng = random.Random(i)
    return [1.0] + [rng.uniform(-1, 1) for _ in range(dim - 1)]


def record(doc: str, i: int, **extra: Any) -> VectorRecord:
    metadata: dict[str, Any] = {"document_id": doc, "chunk_index": i, **extra}
    return VectorRecord(id=f"{doc}#{i}", values=unit(i), metadata=metadata)


def upserts(fake: FakePinecone) -> list[Any]:
    return fake.requests("/vectors/upsert")


def assert_within_limits(fake: FakePinecone) -> None:
    for request in upserts(fake):
        assert request.status == 200
        assert request.vector_count <= MAX_UPSERT_VECTORS
        assert request.body_size <= 2_000_000 < MAX_REQUEST_BYTES
    for request in fake.requests("/vectors/delete") + fake.requests("/vectors/fetch"):
        assert request.id_count <= MAX_IDS_PER_REQUEST


# --- construction ------------------------------------------------------------------------------


def test_import_and_construction_touch_no_network() -> None:
    code = ("import sys, adapters.pinecone.vector_index as m;"
            "m.PineconeVectorIndex('k', 'http://127.0.0.1:9', 8);"
            "print('pinecone' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("kwargs", [
    {"api_key": ""}, {"host": " "}, {"dimension": 0}, {"max_batch_vectors": 1001},
    {"max_batch_bytes": 3_000_000}, {"timeout": 0}, {"retries": -1},
])
def test_bad_settings_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"api_key": KEY, "host": "http://127.0.0.1:9", "dimension": DIM,
                                 **kwargs}
    with pytest.raises(ConfigurationError):
        PineconeVectorIndex(**arguments)


def test_the_client_is_built_again_after_a_fork(index: PineconeVectorIndex,
                                                 fake: FakePinecone) -> None:
    port = port_of(fake.url)
    before = connections_to(port)
    index.upsert_vector("t", [record("parent", 0)])
    parent = connections_to(port) - before
    assert parent
    # The child's client is its own: it opens a connection instead of sharing the parent's.
    assert new_connections_in_a_fork(
        port, lambda: index.upsert_vector("t", [record("child", 0)]))
    assert fake.ids("t") == ["child#0", "parent#0"]
    index.upsert_vector("t", [record("parent", 1)])  # the parent's client still works
    assert index.count("t") == 3
    assert connections_to(port) - before == parent  # on the parent's connection


# --- batching ----------------------------------------------------------------------------------


def test_2500_vectors_go_in_three_requests(index: PineconeVectorIndex, fake: FakePinecone) -> None:
    records = [record("doc_big", i) for i in range(2500)]
    index.upsert_vector("acme", records)
    assert [r.vector_count for r in upserts(fake)] == [1000, 1000, 500]
    assert all(r.namespace == "acme" for r in upserts(fake))
    assert_within_limits(fake)
    assert fake.ids("acme") == sorted(r.id for r in records)
    assert index.count("acme") == 2500


def test_large_metadata_splits_batches_by_bytes(index: PineconeVectorIndex,
                                                fake: FakePinecone) -> None:
    text = "metadata that is large but legal " * 900  # ~30 KB per vector, ~7.4 MB in all
    records = [record("doc_wide", i, note=text) for i in range(250)]
    index.upsert_vector("acme", records)
    sent = upserts(fake)
    # 250 vectors fit the count limit: only bytes split them, into 4 well-filled requests.
    assert len(sent) == 4
    assert sum(r.vector_count for r in sent) == 250
    assert_within_limits(fake)
    assert min(r.body_size for r in sent[:-1]) > 1_950_000
    assert index.count("acme") == 250


def test_a_smaller_byte_budget_is_respected(fake: FakePinecone) -> None:
    adapter = PineconeVectorIndex(KEY, fake.url, DIM, max_batch_bytes=50_000,
                                  max_batch_vectors=40, **FAST)
    try:
        adapter.upsert_vector("t", [record("d", i, note="z" * 1000) for i in range(120)])
    finally:
        adapter.close()
    sent = upserts(fake)
    assert all(r.body_size <= 50_000 and r.vector_count <= 40 for r in sent)
    assert sum(r.vector_count for r in sent) == 120
    assert len(sent) == 3  # ~1.1 KB per vector: the 40-vector cap binds first


def test_metadata_over_40_kb_is_refused_before_anything_is_sent(index: PineconeVectorIndex,
                                                                fake: FakePinecone) -> None:
    records = [record("doc", i) for i in range(10)]
    records[5] = record("doc", 5, text="x" * 41_000)
    with pytest.raises(PermanentError, match=r"doc#5 has \d+ bytes of metadata"):
        index.upsert_vector("t", records)
    assert upserts(fake) == []


@pytest.mark.parametrize(("values", "message"), [
    ([1.0] * (DIM - 1), "dimension 7"),
    ([float("nan")] + [1.0] * (DIM - 1), "NaN"),
    ([0.0] * DIM, "all zeros"),
])
def test_bad_vectors_are_refused_locally(index: PineconeVectorIndex, fake: FakePinecone,
                                         values: list[float], message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        index.upsert_vector("t", [VectorRecord(id="x", values=values, metadata={})])
    assert upserts(fake) == []


def test_the_same_id_twice_in_one_call_keeps_the_last(index: PineconeVectorIndex,
                                                      fake: FakePinecone) -> None:
    index.upsert_vector("t", [record("d", 0, v="one"), record("d", 0, v="two")])
    assert [r.vector_count for r in upserts(fake)] == [1]
    assert fake.metadata("t", "d#0") == {"document_id": "d", "chunk_index": 0.0, "v": "two"}


def test_concurrent_upserts_share_one_client(index: PineconeVectorIndex) -> None:
    def worker(n: int) -> None:
        index.upsert_vector("t", [record(f"doc{n}", i) for i in range(50)])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert index.count("t") == 200


# --- search, tenants and filters --------------------------------------------------------------


def test_namespaces_isolate_tenants(index: PineconeVectorIndex, fake: FakePinecone) -> None:
    index.upsert_vector("alpha", [record("d", i, owner="alpha") for i in range(3)])
    index.upsert_vector("beta", [record("d", i, owner="beta") for i in range(2)])
    assert fake.namespaces() == {"alpha": 3, "beta": 2}
    hits = index.semantic_search("beta", unit(0), 10)
    assert [h.id for h in hits][:1] == ["d#0"]
    assert {h.metadata["owner"] for h in hits} == {"beta"}
    assert (index.count("alpha"), index.count("beta"), index.count("gamma")) == (3, 2, 0)
    index.delete_document("alpha", "d")
    assert (index.count("alpha"), index.count("beta")) == (0, 2)
    assert index.semantic_search("gamma", unit(0), 5) == []


def test_search_orders_by_cosine_and_restores_metadata(index: PineconeVectorIndex) -> None:
    records = [record("d", i, keywords=["k"], weight=0.5, flag=True) for i in range(20)]
    index.upsert_vector("t", records)
    reference = MemoryVectorIndex()
    reference.upsert_vector("t", records)
    query = unit(3)
    hits = index.semantic_search("t", query, 5)
    expected = reference.semantic_search("t", query, 5)
    assert [h.id for h in hits] == [h.id for h in expected]
    assert [h.score for h in hits] == pytest.approx([h.score for h in expected])
    assert hits[0].id == "d#3"
    assert hits[0].score == pytest.approx(1.0)
    assert hits[0].metadata == {"document_id": "d", "chunk_index": 3, "keywords": ["k"],
                                "weight": 0.5, "flag": True}
    assert type(hits[0].metadata["chunk_index"]) is int  # Pinecone sent 3.0
    assert index.semantic_search("t", query, 0) == []
    assert len(index.semantic_search("t", query, 50_000)) == 20  # clamped to Pinecone's 10,000


FILTERS: list[dict[str, Any]] = [
    {"document_id": "a"},
    {"document_id": ["a", "c"]},
    {"chunk_index": 2},
    {"keywords": "red"},
    {"keywords": ["blue", "green"]},
    {"document_id": "b", "keywords": "red"},
    {"flag": True},
    {"flag": 1},
    {"document_id": []},
    {"missing": "x"},
    {},
]


@pytest.mark.parametrize("metadata_filter", FILTERS)
def test_filters_select_what_the_reference_selects(index: PineconeVectorIndex,
                                                   metadata_filter: dict[str, Any]) -> None:
    colours = [["red"], ["blue"], ["red", "green"], []]
    records = [
        VectorRecord(id=f"{doc}#{i}", values=unit(i + 7 * n), metadata={
            "document_id": doc, "chunk_index": i, "keywords": colours[(i + n) % 4],
            "flag": i % 2 == 0})
        for n, doc in enumerate("abc") for i in range(4)
    ]
    index.upsert_vector("t", records)
    reference = MemoryVectorIndex()
    reference.upsert_vector("t", records)
    got = index.semantic_search("t", unit(1), 100, metadata_filter)
    expected = reference.semantic_search("t", unit(1), 100, metadata_filter)
    assert [h.id for h in got] == [h.id for h in expected]


def test_a_filter_that_matches_nothing_sends_no_query(index: PineconeVectorIndex,
                                                      fake: FakePinecone) -> None:
    index.upsert_vector("t", [record("d", 0)])
    assert index.semantic_search("t", unit(0), 5, {"document_id": []}) == []
    assert fake.requests("/query") == []


def test_a_query_of_the_wrong_dimension_is_refused(index: PineconeVectorIndex) -> None:
    with pytest.raises(PermanentError, match="dimension 3"):
        index.semantic_search("t", [1.0, 0.0, 0.0], 5)


# --- deletes, count and listing ----------------------------------------------------------------


def test_delete_ids_in_batches_of_at_most_1000(index: PineconeVectorIndex,
                                               fake: FakePinecone) -> None:
    records = [record("d", i) for i in range(2500)]
    index.upsert_vector("t", records)
    index.upsert_vector("other", records[:5])
    index.delete_ids("t", [r.id for r in records] + ["never#1", "d#0"])
    assert [r.id_count for r in fake.requests("/vectors/delete")] == [1000, 1000, 501]
    assert index.count("t") == 0
    assert index.count("other") == 5
    index.delete_ids("t", [])
    index.delete_ids("t", ["missing#0"])  # missing ids are not an error
    assert_within_limits(fake)


def test_deletes_in_a_tenant_never_written_are_not_errors(index: PineconeVectorIndex,
                                                          fake: FakePinecone) -> None:
    index.delete_ids("newcomer", ["d#0", "d#1"])
    index.delete_document("newcomer", "d")
    # Serverless answers 404 "Namespace not found" there; the adapter takes it as done.
    assert [r.status for r in fake.requests("/vectors/delete")] == [404, 404]


def test_a_404_that_is_not_about_the_namespace_is_permanent(index: PineconeVectorIndex,
                                                            fake: FakePinecone) -> None:
    index.upsert_vector("t", [record("d", 0)])
    fake.fail_next(1, 404, path="/vectors/delete")
    with pytest.raises(PermanentError, match="404"):
        index.delete_ids("t", ["d#0"])
    assert fake.ids("t") == ["d#0"]


def test_delete_document_by_metadata_filter(index: PineconeVectorIndex,
                                            fake: FakePinecone) -> None:
    index.upsert_vector("t", [record("doc_a", i) for i in range(30)]
                        + [record("doc_b", i) for i in range(3)])
    index.delete_document("t", "doc_a")
    deletes = fake.requests("/vectors/delete")
    assert len(deletes) == 1
    assert deletes[0].id_count == 0
    assert index.list_ids("t") == ["doc_b#0", "doc_b#1", "doc_b#2"]
    index.delete_document("t", "doc_a")  # nothing left: not an error
    index.delete_document("nobody", "doc_a")


def test_delete_document_falls_back_where_filter_deletes_are_refused() -> None:
    with FakePinecone(dimension=DIM, api_key=KEY, delete_by_filter=False) as serverless:
        adapter = PineconeVectorIndex(KEY, serverless.url, DIM, **FAST)
        try:
            adapter.upsert_vector("t", [record("doc_a", i) for i in range(150)]
                                  + [record("doc_ab", 0), record("doc_b", 0)])
            adapter.delete_document("t", "doc_a")
            assert adapter.list_ids("t") == ["doc_ab#0", "doc_b#0"]
            first = [(r.path, r.status) for r in serverless.requests()
                     if r.path in ("/vectors/delete", "/vectors/list")]
            assert first == [("/vectors/delete", 400), ("/vectors/list", 200),
                             ("/vectors/list", 200), ("/vectors/delete", 200),
                             ("/vectors/list", 200)]
            serverless.clear_requests()
            adapter.delete_document("t", "doc_b")  # the refusal is remembered
            assert [(r.path, r.status) for r in serverless.requests()] == [
                ("/vectors/list", 200), ("/vectors/delete", 200)]
            assert adapter.list_ids("t") == ["doc_ab#0"]
            adapter.delete_document("newcomer", "doc_a")  # nothing listed, nothing deleted
        finally:
            adapter.close()


def test_the_delete_fallback_finds_every_version_of_a_document() -> None:
    with FakePinecone(dimension=DIM, api_key=KEY, delete_by_filter=False) as serverless:
        adapter = PineconeVectorIndex(KEY, serverless.url, DIM, **FAST)
        try:
            adapter.upsert_vector("t", [
                VectorRecord(id=vector_id, values=unit(n), metadata={"document_id": doc})
                for n, (vector_id, doc) in enumerate([
                    ("doc_a.v1#0", "doc_a"), ("doc_a.v2#0", "doc_a"), ("doc_a#3", "doc_a"),
                    ("doc_ab.v1#0", "doc_ab"), ("doc_a_x#0", "doc_a_x")])])
            adapter.delete_document("t", "doc_a")
            assert adapter.list_ids("t") == ["doc_a_x#0", "doc_ab.v1#0"]
        finally:
            adapter.close()


def test_list_ids_pages_and_filters_by_prefix(index: PineconeVectorIndex,
                                              fake: FakePinecone) -> None:
    index.upsert_vector("t", [record("doc_x", i) for i in range(250)] + [record("doc_y", 0)])
    ids = index.list_ids("t", prefix="doc_x#")
    assert ids == sorted(f"doc_x#{i}" for i in range(250))
    assert len(fake.requests("/vectors/list")) == 3
    assert len(index.list_ids("t")) == 251
    assert index.list_ids("t", prefix="nothing") == []
    assert index.list_ids("empty") == []


# --- errors and retries ------------------------------------------------------------------------


def test_a_short_429_storm_is_ridden_out_by_the_sdk(index: PineconeVectorIndex,
                                                    fake: FakePinecone) -> None:
    fake.fail_next(2, 429, path="/vectors/upsert", retry_after=0)
    index.upsert_vector("t", [record("d", 0)])
    assert [r.status for r in upserts(fake)] == [429, 429, 200]
    assert fake.ids("t") == ["d#0"]


def test_a_long_429_storm_is_transient_with_retry_after(index: PineconeVectorIndex,
                                                        fake: FakePinecone) -> None:
    fake.fail_next(50, 429, retry_after=7)
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        index.upsert_vector("t", [record("d", 0)])
    elapsed = time.monotonic() - started
    assert caught.value.retry_after == 7.0
    assert "429" in str(caught.value)
    # Our 2 retries, not the SDK's default 3, and no 7-second waits: Retry-After is capped.
    assert [r.status for r in upserts(fake)] == [429, 429, 429]
    assert elapsed < 2
    assert fake.ids("t") == []


def test_a_storm_in_the_middle_of_a_batched_upsert(index: PineconeVectorIndex,
                                                   fake: FakePinecone) -> None:
    index.upsert_vector("t", [record("warm", 0)])
    fake.clear_requests()
    records = [record("d", i) for i in range(2500)]
    fake.fail_next(2, 429, path="/vectors/upsert", retry_after=0)
    index.upsert_vector("t", records)
    assert [r.status for r in upserts(fake)] == [429, 429, 200, 200, 200]
    fake.fail_next(3, 503, path="/vectors/upsert")
    with pytest.raises(TransientError):
        index.upsert_vector("t", records)
    index.upsert_vector("t", records)  # idempotent: trying again later is safe
    assert index.count("t") == 2501


def test_500_is_transient(index: PineconeVectorIndex, fake: FakePinecone) -> None:
    fake.fail_next(10, 500)
    with pytest.raises(TransientError) as caught:
        index.count("t")
    assert caught.value.retry_after is None
    assert len(fake.requests("/describe_index_stats")) == 3
    fake.reset()
    fake.fail_next(1, 502)
    assert index.count("t") == 0


def test_a_503_with_an_http_date_retry_after(index: PineconeVectorIndex,
                                             fake: FakePinecone) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    fake.fail_next(10, 503, retry_after=when)
    with pytest.raises(TransientError) as caught:
        index.list_ids("t")
    assert caught.value.retry_after is not None
    assert 100 < caught.value.retry_after <= 121


def test_401_is_permanent_and_never_shows_the_key(fake: FakePinecone) -> None:
    secret = "pcsk_do-not-leak-this-key"
    adapter = PineconeVectorIndex(secret, fake.url, DIM, **FAST)
    try:
        with pytest.raises(PermanentError) as caught:
            adapter.upsert_vector("t", [record("d", 0)])
    finally:
        adapter.close()
    assert not isinstance(caught.value, TransientError)
    assert "401" in str(caught.value)
    assert "API key was refused" in str(caught.value)
    assert secret not in str(caught.value)
    assert secret not in repr(adapter)
    assert len(upserts(fake)) == 1  # not retried


@pytest.mark.parametrize("status", [400, 404])
def test_other_4xx_are_permanent_and_not_retried(index: PineconeVectorIndex,
                                                 fake: FakePinecone, status: int) -> None:
    fake.fail_next(1, status)
    with pytest.raises(PermanentError, match=str(status)):
        index.semantic_search("t", unit(0), 3)
    assert len(fake.requests("/query")) == 1


def test_the_servers_400_on_a_limit_is_permanent(fake: FakePinecone) -> None:
    wrong = PineconeVectorIndex(KEY, fake.url, 16, **FAST)  # the index holds 8 dimensions
    try:
        with pytest.raises(PermanentError, match="does not match the dimension of the index 8"):
            wrong.upsert_vector("t", [VectorRecord(id="x", values=unit(0, 16), metadata={})])
        with pytest.raises(PermanentError, match="400"):
            wrong.semantic_search("t", unit(0, 16), 3)
    finally:
        wrong.close()
    assert [r.status for r in fake.requests()] == [400, 400]


def test_an_unreachable_host_is_transient(fake: FakePinecone) -> None:
    with FakePinecone(dimension=DIM, api_key=KEY) as gone:
        url = gone.url
    adapter = PineconeVectorIndex(KEY, url, DIM, **FAST)
    try:
        with pytest.raises(TransientError, match="PineconeConnectionError"):
            adapter.count("t")
    finally:
        adapter.close()


def test_a_timeout_is_transient(fake: FakePinecone) -> None:
    adapter = PineconeVectorIndex(KEY, fake.url, DIM, **{**FAST, "timeout": 0.2})
    fake.slow_next(3, 0.6)
    started = time.monotonic()
    try:
        with pytest.raises(TransientError, match="PineconeTimeoutError"):
            adapter.count("t")
    finally:
        adapter.close()
    assert time.monotonic() - started < 2.5


# --- dimension check ---------------------------------------------------------------------------


def test_check_dimension(index: PineconeVectorIndex, fake: FakePinecone) -> None:
    index.check_dimension()
    wrong = PineconeVectorIndex(KEY, fake.url, 1536, **FAST)
    try:
        with pytest.raises(ConfigurationError) as caught:
            wrong.check_dimension()
    finally:
        wrong.close()
    assert "dimension 8" in str(caught.value)
    assert "dimension 1536" in str(caught.value)
    assert fake.url in str(caught.value)
