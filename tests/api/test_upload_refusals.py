"""Uploads the API must refuse whole: a body cut short, fields past their limits, a job record
that could not be made. Each answers a clear 4xx (or 503) and leaves nothing behind: no object
under ``<tenant>/incoming/``, no job, no temporary file. Real app, Valkey and MongoDB-wire server.
"""

import pytest

from domain.events import UploadEvent
from localstack.servers import free_port
from tests.api.conftest import Api, bearer
from tests.api.test_endpoints import TEXT, assert_error, incoming_objects
from tests.support.workers import producer

pytestmark = pytest.mark.integration

BOUNDARY = "c0nversa-b0undary"
MAX_SOURCE = 1024


def part(name: str, value: bytes, filename: str | None = None,
         content_type: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + value + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def file_part(data: bytes = TEXT) -> bytes:
    return part("file", data, "notes.md", "text/markdown")


def post(api: Api, key: str, content: bytes):  # type: ignore[no-untyped-def]
    """A multipart POST whose Content-Length is exactly ``content``'s length."""
    return api.client.post("/v1/ingestions", content=content, headers={
        **bearer(key), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


def assert_nothing_kept(api: Api, tenant: str) -> None:
    assert incoming_objects(api, tenant) == []
    assert api.services.jobs.list_jobs(tenant=tenant) == []
    scratch = api.services.settings.data_dir / "api-uploads"
    assert not scratch.exists() or not list(scratch.iterdir())


def test_a_whole_hand_made_body_is_accepted(api: Api) -> None:
    """The control for the cuts below: the same body, not cut, is a 202."""
    key, tenant = api.signup("ann@example.com")
    answer = post(api, key, body(file_part(), part("source", b"handbook")))
    assert answer.status_code == 202, answer.text
    job = api.services.jobs.get(answer.json()["job_id"])
    assert job.source == "handbook"
    assert job.size == len(TEXT)
    assert len(incoming_objects(api, tenant)) == 1


WHOLE = body(file_part(), part("source", b"handbook"))
CUTS = {
    "in the file's bytes": WHOLE.index(TEXT) + len(TEXT) // 2,
    "after the file's bytes": WHOLE.index(TEXT) + len(TEXT),
    "in the next part's headers": WHOLE.index(b'name="source"') + 4,
    "in the last field": WHOLE.index(b"handbook") + 4,
    "before the closing dashes": len(WHOLE) - len(b"--\r\n"),
    "in the closing delimiter": len(WHOLE) - len(b"ary--\r\n"),
}


@pytest.mark.parametrize("where", list(CUTS))
def test_a_body_cut_before_its_closing_boundary_is_refused(api: Api, where: str) -> None:
    key, tenant = api.signup("ann@example.com")
    error = assert_error(post(api, key, WHOLE[:CUTS[where]]), 400, "bad_request")
    assert "incomplete" in error["message"]
    assert_nothing_kept(api, tenant)


def test_a_file_part_that_never_ends_is_refused(api: Api) -> None:
    key, tenant = api.signup("ann@example.com")
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"notes.md\"\r\nContent-Type: text/markdown\r\n\r\n").encode()
    error = assert_error(post(api, key, head + TEXT), 400, "bad_request")
    assert "file" in error["message"]
    assert "incomplete" in error["message"]
    assert_nothing_kept(api, tenant)


@pytest.mark.parametrize("length", [MAX_SOURCE + 1, 2048, 2049, 10_000])
@pytest.mark.parametrize("source_first", [True, False])
def test_a_source_past_its_limit_is_400_before_anything_is_stored(
        api: Api, length: int, source_first: bool) -> None:
    key, tenant = api.signup("ann@example.com")
    source = part("source", b"s" * length)
    parts = (source, file_part()) if source_first else (file_part(), source)
    error = assert_error(post(api, key, body(*parts)), 400, "bad_request")
    assert "source" in error["message"]
    assert str(MAX_SOURCE) in error["message"]
    assert_nothing_kept(api, tenant)


def test_the_source_limit_counts_characters_not_bytes(api: Api) -> None:
    key, tenant = api.signup("ann@example.com")
    longest = "é" * MAX_SOURCE
    accepted = post(api, key, body(file_part(), part("source", longest.encode())))
    assert accepted.status_code == 202, accepted.text
    assert api.services.jobs.get(accepted.json()["job_id"]).source == longest
    refused = post(api, key, body(file_part(), part("source", (longest + "é").encode())))
    assert_error(refused, 400, "bad_request")
    assert len(incoming_objects(api, tenant)) == 1


def test_a_source_name_past_its_limit_is_400_and_a_long_file_name_is_cut(api: Api) -> None:
    key, tenant = api.signup("ann@example.com")
    name_limit = UploadEvent.model_fields["source_name"].metadata[-1].max_length
    long_name = part("source_name", b"n" * (name_limit + 1))
    error = assert_error(post(api, key, body(file_part(), long_name)), 400, "bad_request")
    assert "source_name" in error["message"]
    assert_nothing_kept(api, tenant)
    long_file = part("file", TEXT, "f" * 3000 + ".md", "text/markdown")
    accepted = post(api, key, body(long_file))
    assert accepted.status_code == 202, accepted.text
    job = api.services.jobs.get(accepted.json()["job_id"])
    assert len(job.source_name) <= name_limit
    assert len(job.source) <= name_limit


def test_the_spec_states_the_limits_the_event_enforces(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    form = spec["paths"]["/v1/ingestions"]["post"]["requestBody"]["content"][
        "multipart/form-data"]["schema"]["properties"]
    for name in ("source", "source_name"):
        limit = UploadEvent.model_fields[name].metadata[-1].max_length
        assert form[name]["maxLength"] == limit
        bodies = spec["paths"]["/v1/ingestions"]["post"]["requestBody"]["content"][
            "application/json"]["schema"]["oneOf"]  # an object key, or a URL
        assert len(bodies) == 2
        for named in bodies:
            assert named["properties"][name]["anyOf"][0]["maxLength"] == limit


def test_an_upload_whose_job_cannot_be_recorded_leaves_nothing_staged(
        api: Api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The job store is down after the bytes were staged: 503, and the staged copy is gone."""
    key, tenant = api.signup("ann@example.com")
    env = {**api.env, "CONVERSA_MONGO_URL": f"mongodb://127.0.0.1:{free_port()}/",
           "CONVERSA_MONGO_TIMEOUT_MS": "300"}
    down, _ = producer(env)
    api.client.app.state.services = down  # type: ignore[attr-defined]
    try:
        answer = post(api, key, body(file_part()))
    finally:
        api.client.app.state.services = api.services  # type: ignore[attr-defined]
    assert_error(answer, 503, "unavailable")
    assert_nothing_kept(api, tenant)
