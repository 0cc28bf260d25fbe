"""Usage per job and tenant: each stage adds what it cost to the job, the totals match the
embedder's own counts (the fake OpenAI server's, the local model's tokens), MongoDB adds jobs
up per tenant and day like the in-memory store, `conversa usage` prints them, and the exporter
shows the per-tenant counters unless they are turned off."""

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import redis
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from adapters.memory.fakes import MemoryJobRepository, MemoryUsageMetrics
from adapters.mongodb.repositories import MongoJobRepository
from adapters.onnx.embedder import OnnxEmbedder
from adapters.openai.embedder import OpenAIEmbedder
from adapters.openai.keywords import OpenAIKeywords
from adapters.redis.usage_metrics import RedisUsageMetrics
from cli.main import cli
from cli.metrics import registry_for
from domain.job import IngestionJob
from domain.status import JobStatus
from domain.usage import Usage
from pipeline.bootstrap import Services
from pipeline.producer import enqueue, file_event
from pipeline.settings import Settings
from pipeline.usage import report
from tests.support.fake_openai import FakeOpenAI
from tests.support.inline import memory_services

pytestmark = pytest.mark.integration

TEXTS = {
    "ferns": "Ferns like shade and damp soil; water them weekly and mist the fronds. " * 60,
    "cacti": "Cacti want bright sun, sandy soil and water once a month in winter. " * 45,
    "herbs": "Basil, thyme and mint grow well on a sunny sill if they are cut often. " * 30,
}


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def _ingest_all(services: Services, tmp_path: Path, tenant: str = "acme") -> list[IngestionJob]:
    jobs = []
    for name, text in TEXTS.items():
        path = tmp_path / f"{name}.md"
        path.write_text(text)
        job = enqueue(services, file_event(path, tenant, 10**7, name))
        jobs.append(services.jobs.get(job.job_id))
    # The same content again (another document): its bytes, chunks and embeddings are
    # stored already, so it costs keyword and embedder calls nothing; only its vectors.
    (tmp_path / "copy.md").write_text(TEXTS["ferns"])
    copy = enqueue(services, file_event(tmp_path / "copy.md", tenant, 10**7, "copy"))
    jobs.append(services.jobs.get(copy.job_id))
    assert [job.status for job in jobs] == [JobStatus.DONE] * 4
    return jobs


def test_totals_match_the_fake_openai_servers_counts(fake_openai: FakeOpenAI,
                                                     tmp_path: Path) -> None:
    fake_openai.reset()
    services = memory_services(tmp_path)
    services.embedder = OpenAIEmbedder(fake_openai.api_key, dimension=64,
                                       base_url=fake_openai.base_url, max_inputs_per_request=2)
    services.keywords = OpenAIKeywords(fake_openai.api_key, base_url=fake_openai.base_url)
    services.usage_metrics = MemoryUsageMetrics()
    jobs = _ingest_all(services, tmp_path)

    embeddings = [r for r in fake_openai.records("/v1/embeddings") if r.status == 200]
    chats = [r for r in fake_openai.records("/v1/chat/completions") if r.status == 200]
    assert len(embeddings) > 3  # two chunks a request: several per document
    _, [total] = report(services, "acme")
    assert total.usage.embed_requests == len(embeddings)
    assert total.usage.embed_tokens == sum(r.tokens for r in embeddings)
    assert total.usage.keyword_requests == len(chats) == 3
    assert total.usage.keyword_tokens > 0
    assert total.usage.vectors_written == sum(job.chunk_count or 0 for job in jobs)
    stored = services.objects.list_keys()  # type: ignore[attr-defined]
    assert total.usage.bytes_stored == sum(
        len(services.objects.get_bytes(key)) for key in stored)
    copy = jobs[-1].usage
    assert (copy.embed_requests, copy.keyword_requests, copy.bytes_stored) == (0, 0, 0)
    assert copy.vectors_written == jobs[0].chunk_count
    prices = services.settings.usage.prices
    assert total.cost == pytest.approx(
        total.usage.embed_tokens * prices["text-embedding-3-small"] / 1e6
        + total.usage.keyword_tokens * prices["gpt-4o-mini"] / 1e6)
    metrics = services.usage_metrics
    assert isinstance(metrics, MemoryUsageMetrics)
    assert metrics.counts["acme", "embed_tokens"] == total.usage.embed_tokens


def test_totals_match_the_local_models_token_count(tmp_path: Path) -> None:
    services = memory_services(tmp_path)
    embedder = OnnxEmbedder(threads=1, batch_size=16)
    services.embedder = embedder
    jobs = _ingest_all(services, tmp_path)
    from pipeline import artifacts

    tokens = sum(embedder.count_tokens(chunk.text) for job in jobs[:3]
                 for chunk in artifacts.load_chunks(services.objects, job.chunks_key or "").chunks)
    _, [total] = report(services, "acme")
    assert total.usage.embed_tokens == tokens
    assert total.usage.embed_requests == 3  # one call a document (CONVERSA_EMBED_BATCH_SIZE)
    assert (total.cost, total.unpriced_models) == (0.0, ())  # local: priced at 0


def _job(job_id: str, tenant: str, day: date, **usage: object) -> IngestionJob:
    created = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return IngestionJob(job_id=job_id, tenant=tenant, document_id="doc", source="s",
                        source_uri="file:///s", source_name="s", created_at=created,
                        updated_at=created, usage=Usage.model_validate(usage))


JOBS = [
    _job("j1", "acme", date(2026, 3, 1), embed_requests=2, embed_tokens=100,
         embed_model="text-embedding-3-small", bytes_stored=10, vectors_written=4),
    _job("j2", "acme", date(2026, 3, 1), embed_requests=1, embed_tokens=50,
         embed_model="text-embedding-3-large", keyword_requests=1, keyword_tokens=30,
         keyword_model="gpt-4o-mini"),
    _job("j3", "acme", date(2026, 3, 2), vectors_written=7),
    _job("j4", "globex", date(2026, 3, 1), embed_requests=1, embed_tokens=5,
         embed_model="mystery-model"),
    _job("j5", "globex", date(2026, 3, 3)),
]


def test_mongodb_adds_up_per_tenant_and_day_like_the_memory_store(
        mongo_url: str, mongo_database_name: str) -> None:
    mongo = MongoJobRepository(mongo_url, mongo_database_name)
    memory = MemoryJobRepository()
    for job in JOBS:
        mongo.create(job)
        memory.create(job)
    every = mongo.usage_by_day()
    assert every == memory.usage_by_day()
    assert [(d.tenant, d.day, d.jobs) for d in every] == [
        ("acme", date(2026, 3, 1), 2), ("acme", date(2026, 3, 2), 1),
        ("globex", date(2026, 3, 1), 1), ("globex", date(2026, 3, 3), 1)]
    first = every[0]
    assert first.usage.counts() == {"embed_requests": 3, "embed_tokens": 150,
                                    "keyword_requests": 1, "keyword_tokens": 30,
                                    "bytes_stored": 10, "vectors_written": 4}
    assert first.embed_tokens_by_model == {"text-embedding-3-small": 100,
                                           "text-embedding-3-large": 50}
    assert mongo.usage_by_day(tenant="acme", since=date(2026, 3, 2)) == memory.usage_by_day(
        tenant="acme", since=date(2026, 3, 2)) == [every[1]]
    assert mongo.usage_by_day(tenant="nobody") == []


def test_the_usage_command(mongo_url: str, mongo_database_name: str, env: dict[str, str]
                           ) -> None:
    mongo = MongoJobRepository(mongo_url, mongo_database_name)
    for job in JOBS:
        mongo.create(job)
    runner = CliRunner(env={**env, "COLUMNS": "400", "NO_COLOR": "1"})
    result = runner.invoke(cli, ["usage", "--all-tenants", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(line["tenant"], line["day"]) for line in lines] == [
        ("acme", "2026-03-01"), ("acme", "2026-03-02"), ("globex", "2026-03-01"),
        ("globex", "2026-03-03"), ("acme", None), ("globex", None)]
    acme = lines[4]
    assert (acme["jobs"], acme["embed_tokens"], acme["vectors_written"]) == (3, 150, 11)
    assert acme["estimated_cost"] == pytest.approx((100 * 0.02 + 50 * 0.13 + 30 * 0.15) / 1e6)
    assert lines[5]["unpriced_models"] == ["mystery-model"]
    text = runner.invoke(cli, ["usage", "--tenant", "acme", "--since", "2026-03-02"])
    assert text.exit_code == 0, text.output
    assert "2026-03-02" in text.output
    assert "2026-03-01" not in text.output
    # Another price list is another process's settings (they are read once per process).
    priced = subprocess.run(
        [sys.executable, "-m", "cli", "usage", "--tenant", "globex", "--json"],
        env={**env, "CONVERSA_USAGE__PRICES": '{"mystery-model": 1000000}'},
        capture_output=True, text=True, timeout=120, check=True)
    line = json.loads(priced.stdout.splitlines()[-1])
    assert (line["estimated_cost"], line["unpriced_models"]) == (5.0, [])
    for wrong in (["usage", "--tenant", "acme", "--all-tenants"], ["usage", "--since", "May"]):
        assert runner.invoke(cli, wrong).exit_code == 2


def _tenant_samples(settings: Settings) -> dict[tuple[str, str], float]:
    text = generate_latest(registry_for(settings)).decode()
    return {(sample.name, sample.labels.get("tenant", "")): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name.startswith("conversa_tenant_")}


@pytest.mark.parametrize("enabled", [True, False])
def test_the_exporter_shows_per_tenant_usage_unless_turned_off(
        redis_url: str, mongo_url: str, mongo_database_name: str, tmp_path: Path,
        enabled: bool) -> None:
    redis.Redis.from_url(redis_url).flushall()
    mongo = MongoJobRepository(mongo_url, mongo_database_name)
    for job in JOBS:
        mongo.create(job)
    metrics = RedisUsageMetrics(redis_url)
    metrics.add("acme", Usage(embed_requests=2, embed_tokens=300, vectors_written=9))
    metrics.add("acme", Usage(embed_tokens=20, bytes_stored=1000))
    metrics.add("globex", Usage(keyword_requests=1, keyword_tokens=40))
    settings = Settings(data_dir=tmp_path, broker_url=redis_url, redis_url=redis_url,
                        mongo_url=mongo_url, mongo_database=mongo_database_name,
                        usage={"tenant_metrics": enabled})
    samples = _tenant_samples(settings)
    if not enabled:
        assert samples == {}
        return
    assert samples[("conversa_tenant_embedder_tokens_total", "acme")] == 320
    assert samples[("conversa_tenant_embedder_requests_total", "acme")] == 2
    assert samples[("conversa_tenant_vectors_written_total", "acme")] == 9
    assert samples[("conversa_tenant_stored_bytes_total", "acme")] == 1000
    assert samples[("conversa_tenant_keyword_tokens_total", "globex")] == 40
    assert samples[("conversa_tenant_jobs", "acme")] == 3  # one status: queued
    assert samples[("conversa_tenant_jobs", "globex")] == 2
