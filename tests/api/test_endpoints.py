"""The API's endpoints on the real app, real Valkey and the MongoDB-wire server (no workers:
jobs stay queued; tests/e2e/test_api.py runs them through real workers)."""

import pytest

from domain.job import StageError
from domain.status import JobStatus, Stage
from tests.api.conftest import TEST_UPLOAD_LIMIT, Api, bearer

pytestmark = pytest.mark.integration

TEXT = b"# Lighthouses\n\nKeepers trimmed the wicks and polished the lenses every night.\n" * 20


def upload(api: Api, key: str, name: str = "notes.md", data: bytes = TEXT,
           content_type: str = "text/markdown", **fields: str):  # type: ignore[no-untyped-def]
    return api.client.post("/v1/ingestions", headers=bearer(key), data=fields,
                           files={"file": (name, data, content_type)})


def incoming_objects(api: Api, tenant: str) -> list[str]:
    root = api.services.settings.objects_dir / tenant
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) \
        if root.exists() else []


def assert_error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert "Traceback" not in response.text
    return body["error"]


def test_healthz_and_readyz(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"mongodb": "ok", "object_store": "ok",
                                      "vector_index": "ok", "broker": "ok"}


def test_readyz_is_503_naming_the_broker_when_it_is_down(api: Api) -> None:
    from api.app import broker_probe
    from localstack.servers import free_port

    api.client.app.state.broker_probe = broker_probe(f"redis://127.0.0.1:{free_port()}/0")  # type: ignore[attr-defined]
    error = assert_error(api.client.get("/readyz"), 503, "not_ready")
    assert error["message"].startswith("broker:")


def test_upload_is_streamed_to_incoming_and_answers_202_with_the_job(api: Api) -> None:
    key, tenant = api.signup("ann@example.com")
    answer = upload(api, key)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert set(body) == {"job_id", "document_id", "status"}
    assert body["status"] == "queued"
    assert answer.headers["location"] == f"/v1/ingestions/{body['job_id']}"
    [staged] = incoming_objects(api, tenant)
    assert staged.startswith("incoming/")
    assert api.services.objects.get_bytes(f"{tenant}/{staged}") == TEXT
    job = api.services.jobs.get(body["job_id"])
    assert job.tenant == tenant
    assert job.source_uri == f"object:{tenant}/{staged}"
    assert job.document_id == body["document_id"]
    assert job.size == len(TEXT)
    status = api.client.get(f"/v1/ingestions/{body['job_id']}", headers=bearer(key)).json()
    assert status["status"] == "queued"
    assert status["source_name"] == "notes.md"
    assert not list((api.services.settings.data_dir / "api-uploads").iterdir())


def test_the_same_source_is_the_same_document(api: Api) -> None:
    key, _ = api.signup("ann@example.com")
    first = upload(api, key, source="handbook").json()
    second = upload(api, key, name="other.md", source="handbook").json()
    assert first["document_id"] == second["document_id"]
    assert first["job_id"] != second["job_id"]


@pytest.mark.parametrize("chunked", [False, True])
def test_an_upload_over_the_limit_is_413_and_stores_nothing(api: Api, chunked: bool) -> None:
    key, tenant = api.signup("ann@example.com")
    data = b"x" * (TEST_UPLOAD_LIMIT + 1)
    if chunked:  # no Content-Length: the limit is found while reading the stream
        boundary = "b0undary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"big.txt\"\r\nContent-Type: text/plain\r\n\r\n").encode()

        def stream():  # type: ignore[no-untyped-def]
            yield body
            for start in range(0, len(data), 65536):
                yield data[start:start + 65536]
            yield f"\r\n--{boundary}--\r\n".encode()

        answer = api.client.post("/v1/ingestions", content=stream(), headers={
            **bearer(key), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    else:
        answer = upload(api, key, name="big.txt", data=data, content_type="text/plain")
    assert "limit" in assert_error(answer, 413, "too_large")["message"]
    assert incoming_objects(api, tenant) == []
    assert api.services.jobs.list_jobs(tenant=tenant) == []
    assert not list((api.services.settings.data_dir / "api-uploads").iterdir())


@pytest.mark.parametrize(("name", "data", "content_type", "status", "code"), [
    ("empty.md", b"", "text/markdown", 400, "empty_upload"),
    ("image.gif", b"GIF89a\x01\x00\x01\x00\x00\x00", "image/gif", 415, "unsupported_type"),
    ("blob.txt", b"text\x00with a NUL", "text/plain", 415, "unsupported_type"),
])
def test_a_bad_upload_is_a_clear_4xx_and_stores_nothing(api: Api, name: str, data: bytes,
                                                       content_type: str, status: int,
                                                       code: str) -> None:
    key, tenant = api.signup("ann@example.com")
    error = assert_error(upload(api, key, name, data, content_type), status, code)
    assert error["message"]
    assert incoming_objects(api, tenant) == []
    assert api.services.jobs.list_jobs(tenant=tenant) == []


def test_malformed_bodies_are_4xx(api: Api) -> None:
    key, _ = api.signup("ann@example.com")
    no_file = api.client.post("/v1/ingestions", headers=bearer(key), data={"source": "x"},
                              files={"other": ("a.txt", b"hi", "text/plain")})
    assert "file" in assert_error(no_file, 400, "bad_request")["message"]
    plain = api.client.post("/v1/ingestions", headers={**bearer(key),
                            "Content-Type": "text/plain"}, content=b"hello")
    assert_error(plain, 415, "unsupported_media_type")
    broken = api.client.post("/v1/ingestions", headers={**bearer(key),
                             "Content-Type": "application/json"}, content=b"{nope")
    assert_error(broken, 422, "validation_error")


def test_a_json_body_names_an_object_under_the_tenants_incoming(api: Api) -> None:
    key, tenant = api.signup("ann@example.com")
    _, other = api.signup("bob@example.com")
    api.services.objects.put_bytes(f"{tenant}/incoming/report-1", TEXT, {})
    api.services.objects.put_bytes(f"{other}/incoming/secret", TEXT, {})
    answer = api.client.post("/v1/ingestions", headers=bearer(key), json={
        "object_key": f"{tenant}/incoming/report-1", "source_name": "report.md"})
    assert answer.status_code == 202, answer.text
    job = api.services.jobs.get(answer.json()["job_id"])
    assert job.source_uri == f"object:{tenant}/incoming/report-1"
    assert job.source_name == "report.md"
    assert job.size == len(TEXT)
    for key_name in (f"{other}/incoming/secret", f"{tenant}/incoming/missing",
                     f"{tenant}/derived/x", f"{tenant}/incoming/../x"):
        refused = api.client.post("/v1/ingestions", headers=bearer(key),
                                  json={"object_key": key_name})
        assert_error(refused, 404, "not_found")
    assert_error(api.client.post("/v1/ingestions", headers=bearer(key), json={"key": 1}),
                 422, "validation_error")


def test_jobs_are_listed_newest_first_in_pages_with_a_cursor(api: Api) -> None:
    key, _ = api.signup("ann@example.com")
    ids = [upload(api, key, name=f"n{i}.md").json()["job_id"] for i in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/v1/ingestions", headers=bearer(key), params=params).json()
        pages += 1
        seen += [job["job_id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == ids[::-1]
    queued = api.client.get("/v1/ingestions", headers=bearer(key),
                            params={"status": "queued", "limit": 10}).json()
    assert len(queued["jobs"]) == 5
    failed = api.client.get("/v1/ingestions", headers=bearer(key),
                            params={"status": "failed"}).json()
    assert failed == {"jobs": [], "next_cursor": None}
    assert_error(api.client.get("/v1/ingestions", headers=bearer(key),
                                params={"cursor": "not-a-cursor"}), 400, "bad_request")
    assert_error(api.client.get("/v1/ingestions", headers=bearer(key),
                                params={"status": "nope"}), 422, "validation_error")


def test_retry_re_drives_a_failed_job_and_refuses_others(api: Api) -> None:
    key, _ = api.signup("ann@example.com")
    job_id = upload(api, key).json()["job_id"]
    assert_error(api.client.post(f"/v1/ingestions/{job_id}/retry", headers=bearer(key)),
                 409, "conflict")
    api.services.jobs.fail(job_id, StageError(stage=Stage.STORE, type="TransientError",
                                              message="disk full"))
    failed = api.client.get(f"/v1/ingestions/{job_id}", headers=bearer(key)).json()
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == "disk full"
    retried = api.client.post(f"/v1/ingestions/{job_id}/retry", headers=bearer(key))
    assert retried.status_code == 202
    assert retried.json()["status"] == "queued"
    assert retried.json()["error"] is None
    assert api.services.jobs.get(job_id).status is JobStatus.QUEUED


def test_search_validates_its_body(api: Api) -> None:
    key, _ = api.signup("ann@example.com")
    ok = api.client.post("/v1/search", headers=bearer(key), json={"query": "wicks"})
    assert ok.status_code == 200
    assert ok.json() == {"hits": []}
    assert_error(api.client.post("/v1/search", headers=bearer(key), json={"query": "   "}),
                 400, "bad_request")
    assert_error(api.client.post("/v1/search", headers=bearer(key),
                                 json={"query": "x", "top_k": 0}), 422, "validation_error")
    assert_error(api.client.post("/v1/search", headers=bearer(key),
                                 json={"query": "x", "filters": {"a b": 1}}),
                 422, "validation_error")


def test_deleting_a_missing_document_is_404(api: Api) -> None:
    key, _ = api.signup("ann@example.com")
    assert_error(api.client.delete("/v1/documents/doc_nope", headers=bearer(key)),
                 404, "not_found")


def test_every_error_has_the_one_shape_and_no_internals(api: Api) -> None:
    assert_error(api.client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(api.client.put("/healthz"), 405, "method_not_allowed")
    assert_error(api.client.get("/v1/ingestions"), 401, "unauthorized")
    assert_error(api.client.get("/v1/ingestions", headers=bearer("cvk_nope")),
                 401, "unauthorized")
    assert_error(api.client.post("/v1/users", json={"email": 5}), 422, "validation_error")
    assert_error(api.client.post("/v1/users", json={"email": "not-an-email"}),
                 400, "bad_request")

    def explode() -> None:
        raise RuntimeError("secret detail from /srv/internal/module.py")

    api.client.app.add_api_route("/boom", explode)  # type: ignore[attr-defined]
    error = assert_error(api.client.get("/boom"), 500, "internal_error")
    assert error["message"] == "internal error"


@pytest.mark.parametrize(("name", "data", "content_type"), [
    ("paper.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\x00" + b"x" * 100, "application/pdf"),
    ("utf16.txt", "hello there, world".encode("utf-16-le"), "text/plain"),
    ("page.html", b"<html><body><p>hi</p></body></html>", "text/html"),
    ("scan.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 40, "image/png"),
    ("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40, "image/jpeg"),
    ("fax.tif", b"II*\x00\x08\x00\x00\x00" + b"\x00" * 40, "image/tiff"),
])
def test_types_the_parsers_read_are_accepted_whatever_is_declared(
        api: Api, name: str, data: bytes, content_type: str) -> None:
    key, _ = api.signup("ann@example.com")
    assert upload(api, key, name, data, content_type).status_code == 202
    assert upload(api, key, name, data, "application/octet-stream").status_code == 202
