"""GET /v1/check: the caller's tenant only, report only, 401 without a key."""

from domain.documents import VectorRecord, chunk_id, version_id
from tests.api.conftest import Api, bearer


def test_check_reports_the_callers_tenant_only(api: Api) -> None:
    key_a, tenant_a = api.signup("ada@example.com")
    key_b, _ = api.signup("bob@example.com")
    orphan = chunk_id(version_id("doc_" + "e" * 32, "gone"), 0)
    values = [0.0] * api.services.embedder.dimension
    values[0] = 1.0
    api.services.vectors.upsert_vector(tenant_a, [VectorRecord(
        id=orphan, values=values, metadata={"document_id": "doc_" + "e" * 32})])

    mine = api.client.get("/v1/check", headers=bearer(key_a))
    theirs = api.client.get("/v1/check", headers=bearer(key_b))

    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["tenant"] == tenant_a
    assert body["clean"] is False
    assert body["counts"]["orphan_vectors"] == 1
    assert body["examples"]["orphan_vectors"][0]["ref"] == orphan
    assert theirs.status_code == 200
    assert theirs.json()["clean"] is True
    assert api.services.vectors.list_ids(tenant_a) == [orphan]  # nothing repaired
    assert api.client.get("/v1/check").status_code == 401
