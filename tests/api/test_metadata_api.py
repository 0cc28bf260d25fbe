"""Custom metadata over HTTP: the upload's ``metadata`` field (multipart or JSON) lands on the
job, a bad one is a 400 that stores nothing, and search takes equality, membership and range
filters (no workers here: tests/unit/test_metadata.py runs the pipeline)."""

import json

import pytest

from tests.api.conftest import Api, bearer
from tests.api.test_endpoints import TEXT, assert_error, incoming_objects, upload

pytestmark = pytest.mark.integration


def test_upload_metadata_is_typed_and_kept_on_the_job(api: Api) -> None:
    key, _ = api.signup("ann@example.com")
    metadata = {"team": "legal", "year": 2024, "published": "2024-05-01", "tags": ["a", "b"],
                "public": True, "score": 0.5}
    answer = upload(api, key, metadata=json.dumps(metadata))
    assert answer.status_code == 202, answer.text
    job = api.services.jobs.get(answer.json()["job_id"])
    expected = {**metadata, "published": 1714521600}
    assert job.metadata == expected
    shown = api.client.get(f"/v1/ingestions/{job.job_id}", headers=bearer(key)).json()
    assert shown["metadata"] == expected


@pytest.mark.parametrize(("metadata", "reason"), [
    ("not json", "not JSON"),
    ("[1, 2]", "JSON object"),
    ('{"source": "x"}', "system's own fields"),
    ('{"bad name": 1}', "not valid"),
    ('{"n": null}', "a value is"),
    ('{"n": [1, 2]}', "strings only"),
    ('{"n": NaN}', "finite"),
    (json.dumps({"big": "x" * 40_000}), "longer than|over the limit"),
])
def test_bad_metadata_is_a_400_and_stores_nothing(api: Api, metadata: str, reason: str) -> None:
    key, tenant = api.signup("ann@example.com")
    error = assert_error(upload(api, key, metadata=metadata), 400, "bad_request")
    assert any(part in error["message"] for part in reason.split("|")), error["message"]
    assert incoming_objects(api, tenant) == []
    assert api.services.jobs.list_jobs(tenant=tenant) == []


def test_a_json_ingestion_takes_metadata(api: Api) -> None:
    key, tenant = api.signup("ann@example.com")
    api.services.objects.put_bytes(f"{tenant}/incoming/batch-1", TEXT, {})
    answer = api.client.post("/v1/ingestions", headers=bearer(key), json={
        "object_key": f"{tenant}/incoming/batch-1", "metadata": {"batch": 7}})
    assert answer.status_code == 202, answer.text
    assert api.services.jobs.get(answer.json()["job_id"]).metadata == {"batch": 7}
    refused = api.client.post("/v1/ingestions", headers=bearer(key), json={
        "object_key": f"{tenant}/incoming/batch-1", "metadata": {"keywords": "x"}})
    assert_error(refused, 400, "bad_request")


def test_search_takes_membership_and_range_filters(api: Api) -> None:
    key, _ = api.signup("ann@example.com")
    ok = api.client.post("/v1/search", headers=bearer(key), json={
        "query": "lighthouse", "filters": {
            "team": ["legal", "ops"], "year": {"gte": 2020, "lt": 2025},
            "published": {"gte": "2024-01-01"}, "public": True}})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"hits": []}
    bad = api.client.post("/v1/search", headers=bearer(key), json={
        "query": "x", "filters": {"year": {"gte": "soon"}}})
    assert_error(bad, 400, "bad_request")
    empty = api.client.post("/v1/search", headers=bearer(key), json={
        "query": "x", "filters": {"year": {}}})
    assert_error(empty, 400, "bad_request")
