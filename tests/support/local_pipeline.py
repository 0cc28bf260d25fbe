"""The pipeline in the test process on real servers: MongoDB (the wire server), the local
LanceDB index and filesystem objects, the fake OpenAI server as embedder, stages run inline."""

from pathlib import Path

from domain.documents import vector_ids
from domain.job import IngestionJob
from domain.status import JobStatus
from pipeline.bootstrap import Services, bootstrap
from pipeline.producer import enqueue, file_event
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_pinecone import FakePinecone
from tests.support.inline import InlineDispatcher
from tests.support.workers import settings_from

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
DIMENSION = 64


def pipeline_env(env: dict[str, str], openai: FakeOpenAI,
                 pinecone: FakePinecone | None = None) -> dict[str, str]:
    extra = {
        "CONVERSA_EMBEDDER": "openai",
        "CONVERSA_OPENAI__API_KEY": openai.api_key,
        "CONVERSA_OPENAI__BASE_URL": openai.base_url,
        "CONVERSA_OPENAI__EMBEDDING_DIMENSION": str(DIMENSION),
        "CONVERSA_OPENAI__EMBEDDING_REQUESTS_PER_MINUTE": "0",
        "CONVERSA_OPENAI__EMBEDDING_TOKENS_PER_MINUTE": "0",
    }
    if pinecone is not None:
        extra.update({"CONVERSA_PINECONE__API_KEY": pinecone.api_key,
                      "CONVERSA_PINECONE__RETRIES": "1"})
    return {**env, **extra}


def inline_services(env: dict[str, str]) -> tuple[Services, InlineDispatcher]:
    dispatcher = InlineDispatcher()
    services = bootstrap(settings_from(env), dispatcher=dispatcher)
    dispatcher.services = services
    return services, dispatcher


def ingest(services: Services, path: Path, tenant: str) -> IngestionJob:
    event = file_event(path, tenant, services.settings.max_upload_bytes)
    job = services.jobs.get(enqueue(services, event).job_id)
    return job


def ingest_samples(services: Services, tenant: str, count: int | None = None
                   ) -> list[IngestionJob]:
    jobs = [ingest(services, path, tenant) for path in sorted(SAMPLES.iterdir())[:count]]
    assert [job.status for job in jobs] == [JobStatus.DONE] * len(jobs), [
        job.error for job in jobs]
    return jobs


def served_ids(jobs: list[IngestionJob]) -> list[str]:
    return sorted(vid for job in jobs
                  for vid in vector_ids(job.document_id, job.job_id, job.chunk_count or 0))
