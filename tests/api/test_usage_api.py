"""`GET /v1/usage`: the caller's tenant's usage per day and in all, never another tenant's."""

from datetime import UTC, datetime

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
