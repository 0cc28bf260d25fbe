"""Producers hear back, on a real worker, Valkey and the MongoDB-wire server: a tenant's
callback is POSTed, signed, to a local receiver when a job is done, retried after the
receiver fails; an upload's own callback URL is called when its job fails; a loopback URL is
refused unless allowed; and the API (on uvicorn) streams the tenant's job events."""

import json
import threading

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from adapters.http.guard import BlockedAddressError
from adapters.memory.users import MemoryNotifier
from api.app import create_app
from domain.callbacks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify
from domain.status import JobStatus
from pipeline.bootstrap import bootstrap_accounts
from pipeline.callbacks import set_callback_url, tenant_callback
from pipeline.producer import enqueue, file_event
from tests.support.http_servers import http_server
from tests.support.workers import celery_worker, producer, wait_for, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEXT = "Spring tides follow the new and the full moon, twice a month, all year round.\n"
FAST_CALLBACKS = {"CONVERSA_FETCH__ALLOW_PRIVATE_ADDRESSES": "true",
                  "CONVERSA_CALLBACKS__BACKOFF_BASE": "1.2",
                  "CONVERSA_CALLBACKS__BACKOFF_MAX": "1"}


def test_callbacks_are_signed_retried_and_per_upload(env, tmp_path):
    env = {**env, **FAST_CALLBACKS}
    services, _ = producer(env)
    doc, empty = tmp_path / "tides.md", tmp_path / "empty.md"
    doc.write_text(TEXT)
    empty.write_text("")
    with http_server() as receiver, celery_worker(env, tmp_path / "worker.log"):
        set_callback_url(services, "default", f"{receiver.url}/tenant-hook")
        receiver.state.fail_next = 2  # the first two deliveries of the tenant's hook get 503
        receiver.state.fail_path = "/tenant-hook"
        done = enqueue(services, file_event(doc, "default", 10**6))
        failing = file_event(empty, "default", 10**6).model_copy(
            update={"callback_url": f"{receiver.url}/upload-hook"})
        failed = enqueue(services, failing)
        jobs = {j.job_id: j for j in wait_terminal(services, [done.job_id, failed.job_id])}
        assert jobs[done.job_id].status is JobStatus.DONE
        assert jobs[failed.job_id].status is JobStatus.FAILED

        def delivered() -> list:
            posts = [r for r in receiver.requests if r.method == "POST"]
            return posts if len(posts) >= 4 else []  # 2 refused + 1 done + 1 failed

        posts = wait_for(delivered, 60, "the callbacks")

    secret = tenant_callback(services, "default").secret
    by_path: dict[str, list] = {}
    for post in posts:
        by_path.setdefault(post.path, []).append(post)
        assert verify(secret, post.headers[SIGNATURE_HEADER.lower()], post.body)
        assert not verify("whsec_another", post.headers[SIGNATURE_HEADER.lower()], post.body)
    tenant_hook = [json.loads(p.body) for p in by_path["/tenant-hook"]]
    assert len(tenant_hook) == 3  # the same delivery, tried until it was taken
    assert {e["event_id"] for e in tenant_hook} == {f"{done.job_id}.done"}
    assert tenant_hook[0]["type"] == "job.done"
    assert tenant_hook[0]["job"]["chunk_count"] >= 1
    assert by_path["/tenant-hook"][0].headers[EVENT_ID_HEADER.lower()] == f"{done.job_id}.done"
    upload_hook = [json.loads(p.body) for p in by_path["/upload-hook"]]
    assert [e["type"] for e in upload_hook] == ["job.failed"]
    assert upload_hook[0]["job"]["error"]["message"] == "empty file: nothing to ingest"


def test_a_loopback_callback_url_is_refused_unless_allowed(env):
    services, _ = producer(env)
    with pytest.raises(BlockedAddressError, match="loopback"):
        set_callback_url(services, "default", "http://127.0.0.1:9/hook")
    with pytest.raises(BlockedAddressError, match="link-local"):
        set_callback_url(services, "default", "http://169.254.169.254/latest/meta-data")
    assert tenant_callback(services, "default").url is None

    notifier = MemoryNotifier()
    app = create_app(services=services,
                     accounts=bootstrap_accounts(services.settings, notifier=notifier))
    with TestClient(app) as client:
        client.post("/v1/users", json={"email": "ada@example.com"})
        key = client.post("/v1/users/verify", json={
            "email": "ada@example.com", "code": notifier.last_code("ada@example.com")}
        ).json()["api_key"]
        answer = client.put("/v1/callback", json={"url": "http://127.0.0.1:8080/hook"},
                            headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 400
    assert "127.0.0.1, a loopback address" in answer.json()["error"]["message"]


@pytest.fixture
def served_api(env):
    """The app on a real uvicorn server in a thread, and an API key of its tenant."""
    env = {**env, **FAST_CALLBACKS}
    services, _ = producer(env)
    notifier = MemoryNotifier()
    app = create_app(services=services,
                     accounts=bootstrap_accounts(services.settings, notifier=notifier))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "uvicorn to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    httpx.post(f"{base}/v1/users", json={"email": "ada@example.com"})
    issued = httpx.post(f"{base}/v1/users/verify", json={
        "email": "ada@example.com", "code": notifier.last_code("ada@example.com")}).json()
    yield base, {"Authorization": f"Bearer {issued['api_key']}"}, issued["tenant"], services
    server.should_exit = True
    thread.join(timeout=10)


def test_the_api_streams_a_tenants_job_events(served_api, tmp_path):
    base, auth, tenant, services = served_api
    accepted = httpx.put(f"{base}/v1/callback", json={"url": "http://10.0.0.8/hook"},
                         headers=auth)
    assert accepted.status_code == 200, accepted.text  # private, allowed by the setting here
    assert accepted.json()["url"] == "http://10.0.0.8/hook"
    assert accepted.json()["secret"].startswith("whsec_")
    assert accepted.json()["signature_header"] == SIGNATURE_HEADER

    frames: list[str] = []
    connected = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{base}/v1/events", params={"limit": 2}, headers=auth,
                          timeout=60) as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            for line in answer.iter_lines():
                if line == ": connected":
                    connected.set()
                frames.append(line)

    listener = threading.Thread(target=listen)
    listener.start()
    assert connected.wait(30)
    doc = tmp_path / "tides.md"
    doc.write_text(TEXT)
    first = enqueue(services, file_event(doc, tenant, 10**6))  # no worker: it stays queued
    services.events.publish("someone-else", {"type": "job.queued"})  # another tenant's
    second = enqueue(services, file_event(doc, tenant, 10**6, source="again"))
    listener.join(timeout=60)
    assert not listener.is_alive()
    events = [json.loads(line.removeprefix("data: ")) for line in frames
              if line.startswith("data: ")]
    assert [(e["type"], e["job"]["job_id"]) for e in events] == [
        ("job.queued", first.job_id), ("job.queued", second.job_id)]
    ids = [line.removeprefix("id: ") for line in frames if line.startswith("id: ")]

    # resuming after the first event (as Last-Event-ID) gives the second again
    with httpx.stream("GET", f"{base}/v1/events", params={"limit": 1},
                      headers={**auth, "Last-Event-ID": ids[0]}, timeout=60) as answer:
        data = [line for line in answer.iter_lines() if line.startswith("data: ")]
    assert json.loads(data[0].removeprefix("data: "))["job"]["job_id"] == second.job_id
