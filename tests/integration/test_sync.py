"""`conversa sync` on a real worker, Valkey and the MongoDB-wire server: a folder and a moto
bucket prefix follow their sources (new and changed ingested, gone deleted with --delete), a
second run with nothing changed enqueues nothing, a dry run changes nothing, a sync run again
while the first one's jobs are in flight adds none, and a URL is a usage error."""

import json
import os
import subprocess
import sys

import boto3
import pytest

from domain.status import JobStatus
from pipeline.search import search
from tests.support.moto_server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, unique_bucket
from tests.support.workers import celery_worker, producer, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCS = {
    "tides.md": "# Tides\n\nSpring tides follow the new and the full moon, twice a month.\n",
    "notes/kelp.md": "# Kelp\n\nGiant kelp grows half a metre a day in cold, clear water.\n",
    "notes/lamps.txt": "The keeper trimmed the paraffin wick of the lamp every evening.\n",
}


def conversa(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True,
                          text=True, timeout=240, check=False)


def sync(env: dict[str, str], *args: str) -> list[dict]:
    out = conversa(env, "sync", *args, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def actions(items: list[dict]) -> dict[str, str]:
    return {item["source"].rsplit("/", 2)[-1] if "/notes/" not in item["source"]
            else "notes/" + item["source"].rsplit("/", 1)[-1]: item["action"] for item in items}


def finish(services, items: list[dict]) -> None:
    ids = [item["job_id"] for item in items if item["job_id"]]
    jobs = wait_terminal(services, ids, timeout=180)
    assert {job.status for job in jobs} <= {JobStatus.DONE}, [job.error for job in jobs]


def job_count(services) -> int:
    return len(services.jobs.list_jobs(tenant="default", limit=10_000))


def test_a_folder_follows_its_files(env, tmp_path):
    services, _ = producer(env)
    folder = tmp_path / "docs"
    for name, text in DOCS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)

    with celery_worker(env, tmp_path / "worker.log"):
        first = sync(env, str(folder))
        assert actions(first) == dict.fromkeys(DOCS, "new")
        finish(services, first)
        jobs = job_count(services)

        second = sync(env, str(folder))
        assert actions(second) == dict.fromkeys(DOCS, "unchanged")
        assert job_count(services) == jobs  # nothing enqueued, nothing recorded

        (folder / "tides.md").write_text("# Tides\n\nNeap tides come at the quarter moons.\n")
        os.utime(folder / "notes/kelp.md", ns=(10**18, 10**18))  # touched, same bytes
        (folder / "notes/lamps.txt").unlink()

        planned = sync(env, str(folder), "--delete", "--dry-run")
        assert actions(planned) == {"tides.md": "changed", "notes/kelp.md": "unchanged",
                                    "notes/lamps.txt": "delete"}
        assert job_count(services) == jobs
        lamps = next(item for item in planned if item["action"] == "delete")
        assert services.documents.get("default", lamps["document_id"]).served is not None

        done = sync(env, str(folder), "--delete")
        assert actions(done) == actions(planned)
        finish(services, done)
        assert job_count(services) == jobs + 1
        assert services.documents.get("default", lamps["document_id"]).deleted

        assert {item["action"] for item in sync(env, str(folder), "--delete")} == {"unchanged"}
        assert job_count(services) == jobs + 1

    neap = search(services, "default", "when do neap tides come", top_k=3)
    assert "quarter moons" in neap[0].text
    assert not [hit for hit in search(services, "default", "paraffin wick", top_k=5)
                if hit.source.endswith("lamps.txt")]


def test_a_bucket_prefix_follows_its_objects(env, s3_endpoint, tmp_path):
    bucket = unique_bucket("sync")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION,
                          aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)
    client.create_bucket(Bucket=bucket)
    for name, text in DOCS.items():
        client.put_object(Bucket=bucket, Key=f"docs/{name}", Body=text.encode())
    env = {**env, "CONVERSA_S3__ENDPOINT_URL": s3_endpoint, "CONVERSA_S3__REGION": REGION,
           "CONVERSA_S3__ACCESS_KEY_ID": ACCESS_KEY_ID,
           "CONVERSA_S3__SECRET_ACCESS_KEY": SECRET_ACCESS_KEY, "CONVERSA_S3__LIST_PAGE_SIZE": "2"}
    services, _ = producer(env)
    prefix = f"s3://{bucket}/docs/"

    with celery_worker(env, tmp_path / "worker.log"):
        first = sync(env, prefix)
        assert [item["action"] for item in first] == ["new"] * 3
        finish(services, first)
        jobs = job_count(services)
        assert {item["action"] for item in sync(env, prefix)} == {"unchanged"}
        assert job_count(services) == jobs

        client.put_object(Bucket=bucket, Key="docs/tides.md", Body=b"Neap tides are small.\n")
        client.delete_object(Bucket=bucket, Key="docs/notes/kelp.md")
        client.delete_object(Bucket=bucket, Key="docs/notes/lamps.txt")
        # only what the globs select is considered for deletion: lamps.txt stays a document
        done = sync(env, prefix, "--delete", "--include", "*.md")
        assert {item["source"]: item["action"] for item in done} == {
            f"{prefix}tides.md": "changed", f"{prefix}notes/kelp.md": "delete"}
        finish(services, done)
        assert job_count(services) == jobs + 1
    lamps = services.documents.get("default", first[1]["document_id"])
    assert lamps.source == f"{prefix}notes/lamps.txt"
    assert not lamps.deleted


def test_a_sync_run_again_while_its_jobs_are_in_flight_adds_none(env, tmp_path):
    services, _ = producer(env)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "tides.md").write_text(DOCS["tides.md"])
    first = sync(env, str(folder))  # no worker: the job stays queued
    again = sync(env, str(folder))
    assert [item["action"] for item in again] == ["in-flight"]
    assert again[0]["job_id"] == first[0]["job_id"]
    assert job_count(services) == 1


def test_a_url_is_a_usage_error(env):
    out = conversa(env, "sync", "https://example.com/docs/")
    assert out.returncode == 2
    assert "not a URL" in out.stderr
