"""`GET /v1/usage`: the caller's tenant's usage per day and in all, never another tenant's."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from domain.job import IngestionJob
from domain.usage import Usage
from tests.api.conftest import Api, bearer
from tests.api.test_endpoints import assert_error

pytestmark = pytest.mark.integration


def _job(api: Api, job_id: str, tenant: str, day: int, tokens: int) -> None:
    created = datetime(2026, 3, day, 9, tzinfo=UTC)
    api.services.jobs.create(IngestionJob(
        job_id=job_id, tenant=tenant, document_id="doc", source="s", source_uri="file:///s",
        source_name="s", created_at=created, updated_at=created,
        usage=Usage(embed_requests=1, embed_tokens=tokens, vectors_written=3,
                    embed_model="text-embedding-3-small")))


def test_usage_is_the_callers_tenants_only(api: Api) -> None:
    ann, ann_tenant = api.signup("ann@example.com")
    bob, bob_tenant = api.signup("bob@example.com")
    _job(api, "job-ann-1", ann_tenant, 1, 1000)
    _job(api, "job-ann-2", ann_tenant, 2, 500)
    _job(api, "job-bob-1", bob_tenant, 1, 7)
    body = api.client.get("/v1/usage", headers=bearer(ann)).json()
    assert body["tenant"] == ann_tenant
    assert [(d["day"], d["jobs"], d["embed_tokens"]) for d in body["days"]] == [
        ("2026-03-01", 1, 1000), ("2026-03-02", 1, 500)]
    total = body["total"]
    assert (total["jobs"], total["embed_tokens"], total["vectors_written"]) == (2, 1500, 6)
    assert total["estimated_cost"] == pytest.approx(1500 * 0.02 / 1e6)
    assert total["currency"] == "USD"
    later = api.client.get("/v1/usage?since=2026-03-02", headers=bearer(ann)).json()
    assert [d["day"] for d in later["days"]] == ["2026-03-02"]
    theirs = api.client.get("/v1/usage", headers=bearer(bob)).json()
    assert theirs["total"]["embed_tokens"] == 7
    nothing = api.client.get("/v1/usage?since=2027-01-01", headers=bearer(bob)).json()
    assert (nothing["days"], nothing["total"]["jobs"]) == ([], 0)
    assert_error(api.client.get("/v1/usage?since=soon", headers=bearer(ann)), 422,
                 "validation_error")
    assert_error(api.client.get("/v1/usage"), 401, "unauthorized")


@pytest.mark.e2e
@pytest.mark.slow
def test_real_workers_record_usage_and_metadata_filters_work_over_http(api: Api, tmp_path: Path
                                                                       ) -> None:
    import redis

    from adapters.redis.usage_metrics import SEPARATOR, TENANT_USAGE_KEY
    from tests.api.test_e2e_workers import SAMPLES, wait_done
    from tests.support.workers import celery_worker

    key, tenant = api.signup("ann@example.com")
    files = sorted(SAMPLES.iterdir())[:2]
    with celery_worker(api.env, tmp_path / "worker.log", concurrency=1):
        accepted = []
        for n, path in enumerate(files):
            with path.open("rb") as handle:
                answer = api.client.post(
                    "/v1/ingestions", headers=bearer(key),
                    data={"metadata": json.dumps({"shelf": n, "added": f"2026-01-0{n + 1}"})},
                    files={"file": (path.name, handle, "text/plain")})
            assert answer.status_code == 202, answer.text
            accepted.append(answer.json()["job_id"])
        jobs = wait_done(api, key, accepted)
    assert [job["status"] for job in jobs] == ["done", "done"]
    total = api.client.get("/v1/usage", headers=bearer(key)).json()["total"]
    for name in ("embed_requests", "embed_tokens", "keyword_requests", "bytes_stored",
                 "vectors_written"):
        assert total[name] == sum(job["usage"][name] for job in jobs) > 0, name
    assert total["vectors_written"] == sum(job["chunk_count"] for job in jobs)
    counted = redis.Redis.from_url(api.env["CONVERSA_BROKER_URL"]).hgetall(TENANT_USAGE_KEY)
    assert int(counted[f"{tenant}{SEPARATOR}embed_tokens".encode()]) == total["embed_tokens"]

    hits = api.client.post("/v1/search", headers=bearer(key), json={
        "query": "how do I look after it", "top_k": 10,
        "filters": {"added": {"gte": "2026-01-02"}}}).json()["hits"]
    assert hits
    assert {hit["metadata"]["shelf"] for hit in hits} == {1}
