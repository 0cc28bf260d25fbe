"""Beat runs `conversa check` over every tenant on its schedule (report only: nothing is
repaired) and the exporter serves what it found as ``conversa_check_problems``."""

import time
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from adapters.celery.topology import MAINTENANCE_QUEUE
from cli.metrics import registry_for
from tests.support.fake_openai import FakeOpenAI
from tests.support.local_pipeline import ingest_samples, inline_services, pipeline_env
from tests.support.workers import celery_beat, celery_worker, settings_from, wait_for
from workers.telemetry import CHECK_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def test_beat_checks_every_tenant_reports_only_and_exports_the_counts(env, openai, tmp_path):
    env = {**pipeline_env(env, openai), "CONVERSA_MAINTENANCE__CHECK_EVERY_SECONDS": "1",
           "CONVERSA_MAINTENANCE__ORPHAN_GRACE_SECONDS": "0"}
    services, _ = inline_services(env)
    ingest_samples(services, "acme", 1)
    ingest_samples(services, "other", 1)
    orphans = ["acme/" + "3" * 64, "other/" + "4" * 64]
    for key in orphans:
        services.objects.put_bytes(key, b"left behind", {})
    lost = services.vectors.list_ids("acme")[:1]
    services.vectors.delete_ids("acme", lost)
    client = redis.Redis.from_url(env["CONVERSA_BROKER_URL"])
    started = time.time()

    with celery_worker(env, tmp_path / "worker.log", queues=MAINTENANCE_QUEUE), \
            celery_beat(env, tmp_path):
        wait_for(lambda: float(client.hget(CHECK_KEY, "last_run") or 0) > started, 120,
                 "a scheduled check")

    assert all(services.objects.head(key) is not None for key in orphans)  # not repaired
    assert services.vectors.list_ids("acme")[:1] != lost
    text = generate_latest(registry_for(settings_from(env))).decode()
    problems = {sample.labels["kind"]: sample.value
                for family in text_string_to_metric_families(text)
                if family.name == "conversa_check_problems" for sample in family.samples}
    assert problems == {"orphan_vectors": 0, "missing_vectors": 1, "missing_objects": 0,
                        "orphan_objects": 2, "stuck_jobs": 0}
