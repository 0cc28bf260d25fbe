"""The fake Pinecone server on its own, over plain HTTP: its filter language, limits, error
shapes, failure injection and request log. The Pinecone adapter's tests mean only as much as
this fake is right."""

import json
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.pinecone.vector_index import translate_filter
from domain.filters import matches
from tests.support.fake_pinecone import (
    MAX_METADATA_BYTES,
    MAX_REQUEST_BYTES,
    FakePinecone,
    FilterError,
    matches_filter,
)

DIM = 4
KEY = "unit-test-key"

# --- the filter language -----------------------------------------------------------------------

MOVIE = {"genre": ["comedy", "documentary"], "year": 2020.0, "rating": 7.5, "title": "Up",
         "is_new": True}


@pytest.mark.parametrize(("expression", "expected"), [
    ({"title": "Up"}, True),
    ({"title": "Down"}, False),
    ({"title": {"$eq": "Up"}}, True),
    ({"year": 2020}, True),                      # ints and floats compare as numbers
    ({"year": {"$eq": 2020.0}}, True),
    ({"is_new": True}, True),
    ({"is_new": 1}, False),                      # booleans are not numbers
    ({"year": True}, False),
    ({"title": {"$ne": "Down"}}, True),
    ({"title": {"$ne": "Up"}}, False),
    ({"missing": {"$ne": "x"}}, True),           # a missing field is "not equal"
    ({"missing": "x"}, False),
    ({"missing": {"$nin": ["x"]}}, True),
    ({"missing": {"$in": ["x"]}}, False),
    ({"title": {"$in": ["Up", "Cars"]}}, True),
    ({"title": {"$in": ["Cars"]}}, False),
    ({"title": {"$in": []}}, False),
    ({"title": {"$nin": ["Cars"]}}, True),
    ({"title": {"$nin": ["Up"]}}, False),
    ({"year": {"$gt": 2019}}, True),
    ({"year": {"$gt": 2020}}, False),
    ({"year": {"$gte": 2020}}, True),
    ({"year": {"$lt": 2020.5}}, True),
    ({"year": {"$lte": 2019}}, False),
    ({"year": {"$gte": 2019, "$lt": 2021}}, True),   # several operators: all must hold
    ({"year": {"$gte": 2019, "$lt": 2020}}, False),
    ({"title": {"$gt": 1}}, False),              # comparisons never match strings
    ({"genre": {"$gt": 1}}, False),
    ({"title": {"$exists": True}}, True),
    ({"title": {"$exists": False}}, False),
    ({"missing": {"$exists": False}}, True),
    # list-valued fields: any element for $eq/$in, none for $ne/$nin
    ({"genre": "comedy"}, True),
    ({"genre": "drama"}, False),
    ({"genre": {"$in": ["documentary", "action"]}}, True),
    ({"genre": {"$in": ["drama", "action"]}}, False),
    ({"genre": {"$ne": "comedy"}}, False),
    ({"genre": {"$ne": "drama"}}, True),
    ({"genre": {"$nin": ["comedy", "drama"]}}, False),
    ({"genre": {"$nin": ["drama"]}}, True),
    ({"$and": [{"genre": "comedy"}, {"genre": "documentary"}]}, True),
    ({"$and": [{"genre": "comedy"}, {"genre": "drama"}]}, False),
    ({"$or": [{"genre": "drama"}, {"year": 2020}]}, True),
    ({"$or": [{"genre": "drama"}, {"year": 1999}]}, False),
    ({"$and": [{"$or": [{"title": "Up"}, {"title": "Cars"}]}, {"rating": {"$gte": 7}}]}, True),
    ({"title": "Up", "year": 1999}, False),      # fields combine with an implicit $and
    ({"title": "Up", "year": 2020}, True),
    ({}, True),
])
def test_filter_semantics(expression: dict[str, Any], expected: bool) -> None:
    assert matches_filter(MOVIE, expression) is expected


@pytest.mark.parametrize("expression", [
    {"$gt": 3},                                   # a bare operator at the top level
    {"title": {"$regex": "U.*"}},                 # not an operator Pinecone has
    {"title": ["Up", "Cars"]},                    # a list needs $in
    {"title": {"$in": "Up"}},
    {"year": {"$gt": "2019"}},
    {"year": {"$gt": True}},
    {"title": {"$eq": ["Up"]}},
    {"title": {"$eq": None}},
    {"title": {"$exists": 1}},
    {"$and": []},
    {"$or": {"title": "Up"}},
    {"title": {}},
    {"$and": [{"title": "Up"}, {"year": {"$bad": 1}}]},  # errors are found in every branch
    ["title"],
])
def test_malformed_filters_are_refused(expression: Any) -> None:
    with pytest.raises(FilterError):
        matches_filter(MOVIE, expression)


def test_translated_filters_agree_with_the_domain_reference() -> None:
    """What the adapter sends, evaluated by the fake, selects what domain.filters selects."""
    rng = random.Random(7)
    words = ["a", "b", "c", "d"]
    for _ in range(400):
        metadata: dict[str, Any] = {}
        if rng.random() < 0.8:
            metadata["document_id"] = rng.choice(words)
        if rng.random() < 0.8:
            metadata["chunk_index"] = rng.randrange(3)
        if rng.random() < 0.8:
            metadata["keywords"] = rng.sample(words, rng.randrange(3))
        if rng.random() < 0.5:
            metadata["flag"] = rng.choice([True, False, 1, 0])
        wanted: dict[str, Any] = {}
        for name in rng.sample(["document_id", "chunk_index", "keywords", "flag"],
                               rng.randrange(1, 3)):
            if name == "chunk_index":
                wanted[name] = rng.randrange(3)
            elif name == "flag":
                wanted[name] = rng.choice([True, False, 1])
            else:
                wanted[name] = (rng.choice(words) if rng.random() < 0.5
                                else rng.sample(words, rng.randrange(0, 3)))
        stored = {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                  for k, v in metadata.items()}
        translated = translate_filter(wanted)
        got = matches_filter(stored, translated) if isinstance(translated, dict) else False
        assert got == matches(metadata, wanted), (metadata, wanted, translated)


# --- the server --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[FakePinecone]:
    with FakePinecone(dimension=DIM, api_key=KEY) as fake:
        yield fake


@pytest.fixture
def fake(server: FakePinecone) -> FakePinecone:
    server.reset()
    server.delete_by_filter = True
    return server


def call(fake: FakePinecone, method: str, path: str, body: Any = None, *,
         key: str | None = KEY, raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(fake.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Api-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read()), dict(error.headers)


def vec(i: int, **metadata: Any) -> dict[str, Any]:
    return {"id": f"v{i}", "values": [1.0, i / 10, 0.0, 0.5], "metadata": metadata}


def assert_pinecone_error(answer: Any, code: int, fragment: str) -> None:
    assert set(answer) == {"code", "message", "details"}
    assert answer["code"] == code
    assert answer["details"] == []
    assert fragment in answer["message"]


def test_requires_the_api_key(fake: FakePinecone) -> None:
    for key in (None, "wrong"):
        status, answer, _ = call(fake, "POST", "/describe_index_stats", {}, key=key)
        assert status == 401
        assert_pinecone_error(answer, 16, "Invalid API Key")
    assert call(fake, "POST", "/describe_index_stats", {})[0] == 200


def test_upsert_fetch_and_stats(fake: FakePinecone) -> None:
    status, answer, _ = call(fake, "POST", "/vectors/upsert", {
        "vectors": [vec(1, document_id="d", chunk_index=3, tags=["x"]), vec(2)],
        "namespace": "t1"})
    assert (status, answer) == (200, {"upsertedCount": 2})
    status, answer, _ = call(fake, "GET", "/vectors/fetch?ids=v1&ids=v2&ids=nope&namespace=t1")
    assert status == 200
    assert set(answer["vectors"]) == {"v1", "v2"}
    # Pinecone stores numbers as 64-bit floats and returns them so.
    assert answer["vectors"]["v1"]["metadata"] == {"document_id": "d", "chunk_index": 3.0,
                                                   "tags": ["x"]}
    assert isinstance(answer["vectors"]["v1"]["metadata"]["chunk_index"], float)
    assert "metadata" not in answer["vectors"]["v2"]
    _, stats, _ = call(fake, "POST", "/describe_index_stats", {})
    assert stats["namespaces"] == {"t1": {"vectorCount": 2}}
    assert (stats["dimension"], stats["totalVectorCount"]) == (DIM, 2)


def test_upsert_is_idempotent_by_id(fake: FakePinecone) -> None:
    for title in ("first", "second"):
        call(fake, "POST", "/vectors/upsert", {"vectors": [vec(1, title=title)], "namespace": "t"})
    assert fake.ids("t") == ["v1"]
    assert fake.metadata("t", "v1") == {"title": "second"}


def test_upsert_limits(fake: FakePinecone) -> None:
    status, answer, _ = call(fake, "POST", "/vectors/upsert",
                             {"vectors": [vec(i) for i in range(1001)], "namespace": "t"})
    assert status == 400
    assert_pinecone_error(answer, 3, "1001 vectors, which exceeds the limit of 1000")
    assert call(fake, "POST", "/vectors/upsert",
                {"vectors": [vec(i) for i in range(1000)], "namespace": "t"})[0] == 200

    status, answer, _ = call(fake, "POST", "/vectors/upsert", {
        "vectors": [{"id": "x", "values": [1.0, 2.0, 3.0]}], "namespace": "t"})
    assert status == 400
    assert_pinecone_error(answer, 3, "Vector dimension 3 does not match the dimension of the "
                                     "index 4")

    big = {"text": "x" * (MAX_METADATA_BYTES - len('{"text":""}'))}
    assert call(fake, "POST", "/vectors/upsert",
                {"vectors": [vec(5000, **big)], "namespace": "t"})[0] == 200
    status, answer, _ = call(fake, "POST", "/vectors/upsert", {
        "vectors": [vec(5001, text=big["text"] + "y")], "namespace": "t"})
    assert status == 400
    assert_pinecone_error(answer, 3, f"exceeds the limit of {MAX_METADATA_BYTES} bytes")

    for bad in (None, {"nested": 1}, [1, 2]):
        status, answer, _ = call(fake, "POST", "/vectors/upsert",
                                 {"vectors": [vec(7, field=bad)], "namespace": "t"})
        assert status == 400, bad
    status, _, _ = call(fake, "POST", "/vectors/upsert", {
        "vectors": [{"id": "zero", "values": [0.0] * DIM}], "namespace": "t"})
    assert status == 400
    assert fake.namespaces() == {"t": 1001}


def test_request_body_over_2_mb_is_refused_whole(fake: FakePinecone) -> None:
    vectors = [vec(i, text="y" * 30_000) for i in range(80)]  # ~2.4 MB
    body = json.dumps({"vectors": vectors, "namespace": "t"}).encode()
    assert len(body) > MAX_REQUEST_BYTES
    status, answer, _ = call(fake, "POST", "/vectors/upsert", raw=body)
    assert status == 400
    assert_pinecone_error(answer, 3, "exceeds the maximum supported size")
    assert fake.namespaces() == {}
    assert fake.requests("/vectors/upsert")[-1].body_size == len(body)


def test_a_bad_vector_rejects_the_whole_request(fake: FakePinecone) -> None:
    vectors = [vec(1), {"id": "bad", "values": [1.0]}, vec(3)]
    assert call(fake, "POST", "/vectors/upsert", {"vectors": vectors, "namespace": "t"})[0] == 400
    assert fake.ids("t") == []


def test_query_cosine_order_namespaces_and_filters(fake: FakePinecone) -> None:
    call(fake, "POST", "/vectors/upsert", {"namespace": "a", "vectors": [
        {"id": "same", "values": [1, 0, 0, 0], "metadata": {"k": "x", "n": 1}},
        {"id": "near", "values": [1, 1, 0, 0], "metadata": {"k": "y", "n": 2}},
        {"id": "far", "values": [0, 0, 1, 0], "metadata": {"k": "x", "n": 3}},
    ]})
    call(fake, "POST", "/vectors/upsert", {"namespace": "b", "vectors": [
        {"id": "other", "values": [1, 0, 0, 0]}]})
    status, answer, _ = call(fake, "POST", "/query", {
        "namespace": "a", "vector": [2, 0, 0, 0], "topK": 10, "includeMetadata": True})
    assert status == 200
    assert [m["id"] for m in answer["matches"]] == ["same", "near", "far"]
    assert [round(m["score"], 6) for m in answer["matches"]] == [1.0, round(2 ** -0.5, 6), 0.0]
    assert answer["matches"][0]["metadata"] == {"k": "x", "n": 1.0}
    assert answer["matches"][0]["values"] == []
    _, answer, _ = call(fake, "POST", "/query", {
        "namespace": "a", "vector": [1, 0, 0, 0], "topK": 1, "includeValues": True})
    assert [(m["id"], m["values"]) for m in answer["matches"]] == [("same", [1, 0, 0, 0])]
    assert "metadata" not in answer["matches"][0]
    _, answer, _ = call(fake, "POST", "/query", {
        "namespace": "a", "vector": [1, 0, 0, 0], "topK": 10,
        "filter": {"k": {"$eq": "x"}, "n": {"$gte": 2}}})
    assert [m["id"] for m in answer["matches"]] == ["far"]
    _, answer, _ = call(fake, "POST", "/query", {"namespace": "a", "id": "near", "topK": 2})
    assert [m["id"] for m in answer["matches"]] == ["near", "same"]
    _, answer, _ = call(fake, "POST", "/query", {"namespace": "a", "id": "absent", "topK": 2})
    assert answer["matches"] == []
    _, answer, _ = call(fake, "POST", "/query", {"namespace": "empty", "vector": [1, 0, 0, 0],
                                                 "topK": 5})
    assert answer["matches"] == []


@pytest.mark.parametrize("body", [
    {"vector": [1, 0, 0, 0], "topK": 10_001},
    {"vector": [1, 0, 0, 0], "topK": 0},
    {"vector": [1, 0, 0], "topK": 1},
    {"vector": [1, 0, 0, 0], "id": "x", "topK": 1},
    {"topK": 1},
    {"vector": [1, 0, 0, 0], "topK": 1, "filter": {"$gt": 1}},
])
def test_query_refusals(fake: FakePinecone, body: dict[str, Any]) -> None:
    status, answer, _ = call(fake, "POST", "/query", {"namespace": "a", **body})
    assert status == 400
    assert answer["code"] == 3


def test_query_top_k_at_the_limit(fake: FakePinecone) -> None:
    status, _, _ = call(fake, "POST", "/query", {"vector": [1, 0, 0, 0], "topK": 10_000})
    assert status == 200


def test_fetch_and_delete_id_limits(fake: FakePinecone) -> None:
    call(fake, "POST", "/vectors/upsert", {"vectors": [vec(i) for i in range(5)], "namespace": "t"})
    ids = "&".join(f"ids=v{i}" for i in range(1001))
    status, answer, _ = call(fake, "GET", f"/vectors/fetch?{ids}&namespace=t")
    assert status == 400
    assert_pinecone_error(answer, 3, "1001 ids")
    status, answer, _ = call(fake, "POST", "/vectors/delete",
                             {"ids": [f"v{i}" for i in range(1001)], "namespace": "t"})
    assert status == 400
    assert_pinecone_error(answer, 3, "1001 ids")
    assert fake.ids("t") == [f"v{i}" for i in range(5)]
    status, answer, _ = call(fake, "POST", "/vectors/delete",
                             {"ids": [f"v{i}" for i in range(1000)], "namespace": "t"})
    assert (status, answer) == (200, {})
    assert fake.ids("t") == []
    assert fake.requests("/vectors/delete")[-1].id_count == 1000


def test_delete_by_filter_and_delete_all(fake: FakePinecone) -> None:
    call(fake, "POST", "/vectors/upsert", {"namespace": "t", "vectors": [
        vec(1, document_id="a"), vec(2, document_id="a"), vec(3, document_id="b")]})
    call(fake, "POST", "/vectors/upsert", {"namespace": "u", "vectors": [vec(1, document_id="a")]})
    assert call(fake, "POST", "/vectors/delete",
                {"namespace": "t", "filter": {"document_id": {"$eq": "a"}}})[0] == 200
    assert fake.ids("t") == ["v3"]
    assert fake.ids("u") == ["v1"]
    assert call(fake, "POST", "/vectors/delete", {"namespace": "t", "filter": {}})[0] == 400
    assert call(fake, "POST", "/vectors/delete", {"namespace": "t"})[0] == 400
    assert call(fake, "POST", "/vectors/delete", {"namespace": "t", "deleteAll": True})[0] == 200
    assert fake.namespaces() == {"u": 1}


def test_delete_in_a_namespace_never_written_is_404(fake: FakePinecone) -> None:
    for body in ({"ids": ["v1"]}, {"filter": {"a": "b"}}, {"deleteAll": True}):
        status, answer, _ = call(fake, "POST", "/vectors/delete", {"namespace": "nope", **body})
        assert status == 404
        assert_pinecone_error(answer, 5, "Namespace not found")


def test_serverless_mode_refuses_delete_by_filter(fake: FakePinecone) -> None:
    fake.delete_by_filter = False
    call(fake, "POST", "/vectors/upsert", {"namespace": "t", "vectors": [vec(1, document_id="a")]})
    status, answer, _ = call(fake, "POST", "/vectors/delete",
                             {"namespace": "t", "filter": {"document_id": "a"}})
    assert status == 400
    assert_pinecone_error(answer, 3, "do not support deleting with metadata filtering")
    assert fake.ids("t") == ["v1"]


def test_list_pages_through_ids_with_a_prefix(fake: FakePinecone) -> None:
    ids = [f"doc#{i}" for i in range(250)] + ["other#1"]
    call(fake, "POST", "/vectors/upsert", {"namespace": "t", "vectors": [
        {"id": i, "values": [1, 0, 0, 0]} for i in ids]})
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        query = "namespace=t&prefix=doc%23&limit=100" + (f"&paginationToken={token}" if token
                                                         else "")
        status, answer, _ = call(fake, "GET", f"/vectors/list?{query}")
        assert status == 200
        pages += 1
        seen.extend(item["id"] for item in answer["vectors"])
        token = answer.get("pagination", {}).get("next")
        if not token:
            break
    assert pages == 3
    assert seen == sorted(i for i in ids if i.startswith("doc#"))
    assert call(fake, "GET", "/vectors/list?namespace=t&limit=101")[0] == 400
    assert call(fake, "GET", "/vectors/list?namespace=t&paginationToken=garbage")[0] == 400


def test_injected_failures_and_log(fake: FakePinecone) -> None:
    fake.fail_next(2, 429, path="/query", retry_after=7)
    fake.fail_next(1, 500)
    body = {"vector": [1, 0, 0, 0], "topK": 1, "namespace": "t"}
    # The 500 is for any path, so the first stats call takes it; queries get their two 429s.
    status, answer, headers = call(fake, "POST", "/describe_index_stats", {})
    assert status == 500
    assert_pinecone_error(answer, 13, "Internal error")
    assert "Retry-After" not in headers
    for _ in range(2):
        status, answer, headers = call(fake, "POST", "/query", body)
        assert (status, headers["Retry-After"]) == (429, "7")
        assert_pinecone_error(answer, 8, "rate limit")
    assert call(fake, "POST", "/query", body)[0] == 200
    assert call(fake, "POST", "/describe_index_stats", {})[0] == 200
    log = fake.requests()
    assert [(r.path, r.status) for r in log] == [
        ("/describe_index_stats", 500), ("/query", 429), ("/query", 429), ("/query", 200),
        ("/describe_index_stats", 200)]
    assert log[1].namespace == "t"
    assert log[1].body_size == len(json.dumps(body).encode())


def test_the_log_counts_vectors_and_ids(fake: FakePinecone) -> None:
    call(fake, "POST", "/vectors/upsert", {"vectors": [vec(i) for i in range(3)], "namespace": "t"})
    call(fake, "GET", "/vectors/fetch?ids=v1&ids=v2&namespace=t")
    upsert, fetch = fake.requests()
    assert (upsert.vector_count, upsert.id_count, upsert.namespace) == (3, 0, "t")
    assert (fetch.method, fetch.id_count, fetch.namespace) == ("GET", 2, "t")


def test_unknown_paths_are_404(fake: FakePinecone) -> None:
    status, answer, _ = call(fake, "POST", "/vectors/nope", {})
    assert status == 404
    assert answer["code"] == 5


def test_concurrent_upserts_are_all_kept(fake: FakePinecone) -> None:
    def worker(start: int) -> None:
        for i in range(start, start + 25):
            call(fake, "POST", "/vectors/upsert", {"vectors": [vec(i)], "namespace": "t"})

    threads = [threading.Thread(target=worker, args=(n * 25,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.namespaces() == {"t": 100}
    assert len(fake.requests("/vectors/upsert")) == 100
