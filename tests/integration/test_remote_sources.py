"""`conversa ingest` beyond local files, on a real worker: an s3:// prefix on moto's S3 server
(listed page by page, globs, --dry-run) and an http:// URL from a local HTTP server, both
read by the store stage; a loopback URL refused at once while the fetch settings forbid it;
and the API taking a URL."""

import json
import subprocess
import sys

import boto3
import pytest
from fastapi.testclient import TestClient

from adapters.memory.users import MemoryNotifier
from api.app import create_app
from domain.status import JobStatus
from pipeline.bootstrap import bootstrap_accounts
from pipeline.search import search
from tests.support.http_servers import http_server
from tests.support.moto_server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, unique_bucket
from tests.support.workers import celery_worker, producer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIDES = b"# Tide tables\n\nSpring tides follow the new and the full moon, twice a month.\n"
KELP = b"# Kelp forests\n\nGiant kelp grows half a metre a day in cold, clear water.\n"
LIGHT = b"# Lighthouse lamps\n\nThe keeper trimmed the paraffin wick every evening.\n"


def conversa(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True,
                          text=True, timeout=240, check=False)


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def remote_env(env, s3_endpoint):
    bucket = unique_bucket("sources")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION,
                          aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)
    client.create_bucket(Bucket=bucket)
    for key, body in {"docs/tides.md": TIDES, "docs/notes/lighthouse.md": LIGHT,
                      "docs/drafts/kelp.md": KELP, "docs/photo.bin": b"\x89PNG....",
                      "docs/empty-folder/": b"", "elsewhere/kelp.md": KELP}.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    env = {**env, "CONVERSA_S3__ENDPOINT_URL": s3_endpoint, "CONVERSA_S3__REGION": REGION,
           "CONVERSA_S3__ACCESS_KEY_ID": ACCESS_KEY_ID,
           "CONVERSA_S3__SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
           "CONVERSA_S3__LIST_PAGE_SIZE": "2"}  # several pages for a handful of keys
    return env, bucket


def test_bucket_prefix_and_url_on_a_real_worker(remote_env, tmp_path):
    env, bucket = remote_env
    env = {**env, "CONVERSA_FETCH__ALLOW_PRIVATE_ADDRESSES": "true"}
    services, _ = producer(env)
    globs = ["--include", "*.md", "--exclude", "drafts/*"]

    dry = conversa(env, "ingest", f"s3://{bucket}/docs", *globs, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert lines(dry.stdout) == [
        {"action": "ingest", "source": f"s3://{bucket}/docs/notes/lighthouse.md",
         "size": len(LIGHT)},
        {"action": "ingest", "source": f"s3://{bucket}/docs/tides.md", "size": len(TIDES)}]
    assert services.jobs.list_jobs(tenant="default") == []  # a dry run enqueues nothing

    with http_server(files={"kelp.md": KELP}) as web, celery_worker(env, tmp_path / "w.log"):
        ingested = conversa(env, "ingest", f"s3://{bucket}/docs", *globs,
                            f"{web.url}/files/kelp.md", "--wait", "--json")
        assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    jobs = lines(ingested.stdout)
    assert sorted(job["source"] for job in jobs) == sorted([
        f"s3://{bucket}/docs/notes/lighthouse.md", f"s3://{bucket}/docs/tides.md",
        f"{web.url}/files/kelp.md"])
    assert {job["status"] for job in jobs} == {"done"}

    hits = search(services, "default", "when are spring tides", top_k=1)
    assert hits[0].source == f"s3://{bucket}/docs/tides.md"
    hits = search(services, "default", "how fast does giant kelp grow", top_k=1)
    assert hits[0].source == f"{web.url}/files/kelp.md"
    # the store stage read each into its content-addressed key; bucket objects keep their tag
    stored = {job.source: job for job in services.jobs.get_many([j["job_id"] for j in jobs])}
    assert all(job.object_key == f"default/{job.sha256}" for job in stored.values())
    assert stored[f"s3://{bucket}/docs/tides.md"].source_version.startswith("etag=")


def test_a_loopback_url_is_refused_before_anything_is_enqueued(env):
    services, _ = producer(env)
    with http_server(files={"kelp.md": KELP}) as web:
        refused = conversa(env, "ingest", f"{web.url}/files/kelp.md")
        assert web.requests == []
    assert refused.returncode == 1
    assert "127.0.0.1, a loopback address" in refused.stderr
    assert "CONVERSA_FETCH__ALLOW_PRIVATE_ADDRESSES" in refused.stderr
    assert services.jobs.list_jobs(tenant="default") == []


def test_an_object_over_the_size_limit_is_reported_and_the_rest_enqueued(remote_env):
    env, bucket = remote_env
    env = {**env, "CONVERSA_MAX_UPLOAD_BYTES": str(len(TIDES) - 1)}
    services, _ = producer(env)
    out = conversa(env, "ingest", f"s3://{bucket}/docs/", "--include", "*.md", "--json")
    assert out.returncode == 1
    rows = lines(out.stdout)
    refused = [row for row in rows if row.get("action") == "refused"]
    assert [row["source"] for row in refused] == [f"s3://{bucket}/docs/tides.md"]
    assert refused[0]["error"] == (f"file too large: s3://{bucket}/docs/tides.md is over the "
                                   f"limit of {len(TIDES) - 1} bytes")
    queued = {job.source for job in services.jobs.list_jobs(tenant="default")}
    assert queued == {f"s3://{bucket}/docs/notes/lighthouse.md",
                      f"s3://{bucket}/docs/drafts/kelp.md"}


@pytest.mark.parametrize("allowed", [False, True])
def test_the_api_takes_a_url(env, allowed):
    if allowed:
        env = {**env, "CONVERSA_FETCH__ALLOW_PRIVATE_ADDRESSES": "true"}
    services, _ = producer(env)
    notifier = MemoryNotifier()
    app = create_app(services=services,
                     accounts=bootstrap_accounts(services.settings, notifier=notifier))
    with TestClient(app, raise_server_exceptions=False) as client, http_server() as web:
        client.post("/v1/users", json={"email": "ada@example.com"})
        key = client.post("/v1/users/verify", json={
            "email": "ada@example.com", "code": notifier.last_code("ada@example.com")}
        ).json()["api_key"]
        url = f"{web.url}/files/kelp.md"
        answer = client.post("/v1/ingestions", json={"url": url},
                             headers={"Authorization": f"Bearer {key}"})
        assert web.requests == []  # the API never fetches: the store stage does
    if not allowed:
        assert answer.status_code == 400
        assert "loopback" in answer.json()["error"]["message"]
        return
    assert answer.status_code == 202, answer.text
    job = services.jobs.get(answer.json()["job_id"])
    assert (job.source, job.source_uri, job.source_name, job.status) == (
        url, url, "kelp.md", JobStatus.QUEUED)
