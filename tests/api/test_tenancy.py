"""User A can never read, list, retry, delete or rotate what is B's: it all looks missing."""

import pytest

from domain.job import StageError
from domain.status import Stage
from tests.api.conftest import Api, bearer

pytestmark = pytest.mark.integration


def test_another_tenants_things_are_indistinguishable_from_missing(api: Api) -> None:
    a_key, a_tenant = api.signup("ann@example.com")
    b_key, b_tenant = api.signup("bob@example.com")
    assert a_tenant != b_tenant
    a_job = api.client.post("/v1/ingestions", headers=bearer(a_key), data={"source": "s"},
                            files={"file": ("a.md", b"ann's notes " * 50, "text/markdown")}
                            ).json()
    api.services.jobs.fail(a_job["job_id"], StageError(stage=Stage.STORE, type="X",
                                                       message="m"))
    missing = api.client.get("/v1/ingestions/0123456789abcdef", headers=bearer(b_key))
    for response in (
        api.client.get(f"/v1/ingestions/{a_job['job_id']}", headers=bearer(b_key)),
        api.client.post(f"/v1/ingestions/{a_job['job_id']}/retry", headers=bearer(b_key)),
        api.client.delete(f"/v1/documents/{a_job['document_id']}", headers=bearer(b_key)),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == missing.json()["error"]["code"]
    assert api.client.get("/v1/ingestions", headers=bearer(b_key)).json()["jobs"] == []
    # the tenant is the key's, whatever the request says
    b_upload = api.client.post("/v1/ingestions?tenant=" + a_tenant, headers=bearer(b_key),
                               data={"tenant": a_tenant},
                               files={"file": ("b.md", b"bob " * 50, "text/markdown")})
    assert api.services.jobs.get(b_upload.json()["job_id"]).tenant == b_tenant
    a_key_id = api.client.get("/v1/keys", headers=bearer(a_key)).json()["keys"][0]["key_id"]
    assert api.client.post(f"/v1/keys/{a_key_id}/rotate", headers=bearer(b_key)
                           ).status_code == 404
    assert api.client.delete(f"/v1/keys/{a_key_id}", headers=bearer(b_key)).status_code == 404
    assert api.client.get("/v1/keys", headers=bearer(a_key)).status_code == 200
    # A still sees and may retry its own job
    assert api.client.get(f"/v1/ingestions/{a_job['job_id']}", headers=bearer(a_key)
                          ).json()["status"] == "failed"
    assert api.client.post(f"/v1/ingestions/{a_job['job_id']}/retry", headers=bearer(a_key)
                           ).status_code == 202
