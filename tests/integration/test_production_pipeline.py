"""The whole chain on the production adapters: S3 on moto's server, MongoDB on the wire server,
Pinecone and OpenAI on their fake servers, with 429s injected mid-run."""

import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from domain.documents import vector_ids
from domain.status import JobStatus
from pipeline.producer import enqueue, upload_file_event
from pipeline.search import search
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_pinecone import FakePinecone
from tests.support.moto_server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, unique_bucket
from tests.support.workers import celery_worker, producer, wait_for, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
DIMENSION = 256
#: The fake OpenAI's own caps, and ours a little below them (per minute).
FAKE_RPM, FAKE_TPM = 120, 400_000
OUR_RPM, OUR_TPM = 100, 300_000


def production_env(base: dict[str, str], s3_endpoint: str, bucket: str, pinecone: FakePinecone,
                   openai: FakeOpenAI, dimension: int = DIMENSION) -> dict[str, str]:
    return {
        **base,
        "CONVERSA_OBJECT_STORE": "s3",
        "CONVERSA_S3__BUCKET": bucket,
        "CONVERSA_S3__ENDPOINT_URL": s3_endpoint,
        "CONVERSA_S3__REGION": REGION,
        "CONVERSA_S3__ACCESS_KEY_ID": ACCESS_KEY_ID,
        "CONVERSA_S3__SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "CONVERSA_S3__CREATE_BUCKET": "true",
        "CONVERSA_VECTOR_INDEX": "pinecone",
        "CONVERSA_PINECONE__HOST": pinecone.url,
        "CONVERSA_PINECONE__API_KEY": pinecone.api_key,
        "CONVERSA_PINECONE__RETRIES": "1",
        "CONVERSA_EMBEDDER": "openai",
        "CONVERSA_KEYWORDS": "openai",
        "CONVERSA_OPENAI__API_KEY": openai.api_key,
        "CONVERSA_OPENAI__BASE_URL": openai.base_url,
        "CONVERSA_OPENAI__EMBEDDING_DIMENSION": str(dimension),
        "CONVERSA_OPENAI__EMBEDDING_REQUESTS_PER_MINUTE": str(OUR_RPM),
        "CONVERSA_OPENAI__EMBEDDING_TOKENS_PER_MINUTE": str(OUR_TPM),
        "CONVERSA_OPENAI__KEYWORDS_REQUESTS_PER_MINUTE": str(OUR_RPM),
        "CONVERSA_OPENAI__KEYWORDS_TOKENS_PER_MINUTE": str(OUR_TPM),
    }


def test_every_job_ends_done_through_429_storms(env, s3_endpoint, tmp_path):
    bucket = unique_bucket()
    with (FakePinecone(dimension=DIMENSION) as pinecone,
          FakeOpenAI(requests_per_window=FAKE_RPM, tokens_per_window=FAKE_TPM) as openai):
        env = production_env(env, s3_endpoint, bucket, pinecone, openai)
        services, _ = producer(env)
        files = sorted(SAMPLES.iterdir())
        with celery_worker(env, tmp_path / "worker.log", concurrency=2):
            jobs = [enqueue(services, upload_file_event(services, f, "default")) for f in files]
            wait_for(lambda: services.jobs.list_jobs(status=JobStatus.DONE), 120,
                     "the first job to finish")
            openai.fail_next(3, 429, retry_after=1)
            pinecone.fail_next(3, 429)
            finished = wait_terminal(services, [job.job_id for job in jobs], timeout=300)

        assert [job.status for job in finished] == [JobStatus.DONE] * len(files), [
            job.error for job in finished]
        expected = sorted(vector_id for job in finished for vector_id in
                          vector_ids(job.document_id, job.chunks_key, job.chunk_count))
        assert sorted(pinecone.ids("default")) == expected
        admitted = openai.admitted("/v1/embeddings")
        assert admitted
        assert all(r.inputs <= 2048 and r.tokens <= 300_000 for r in admitted)
        assert openai.count("rate-limited") == 0  # never over the fake's own caps
        assert openai.count("injected") == 3
        assert len(pinecone.requests()) > 0

        s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION,
                          aws_access_key_id=ACCESS_KEY_ID,
                          aws_secret_access_key=SECRET_ACCESS_KEY)
        keys = {obj["Key"] for obj in s3.list_objects_v2(Bucket=bucket)["Contents"]}
        assert {job.object_key for job in finished} <= keys
        assert all(key.startswith("default/") for key in keys)
        assert not [key for key in keys if "/incoming/" in key]  # staged uploads cleaned up

        hits = search(services, "default", "how do I keep a sourdough starter alive", top_k=3)
        assert len(hits) == 3
        assert all(hit.text for hit in hits)


def test_a_worker_refuses_to_start_on_a_dimension_mismatch(env, s3_endpoint, tmp_path):
    with (FakePinecone(dimension=DIMENSION) as pinecone,
          FakeOpenAI() as openai):
        env = production_env(env, s3_endpoint, unique_bucket(), pinecone, openai,
                             dimension=DIMENSION * 2)
        run = subprocess.run([sys.executable, "-m", "cli", "worker", "-c", "1"], env=env,
                             capture_output=True, text=True, timeout=120, check=False)

    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert f"dimension {DIMENSION}" in output
    assert f"dimension {DIMENSION * 2}" in output
