"""`conversa check` on real servers: the state is broken each way the check knows (vectors
deleted, objects deleted, orphan vectors and objects added, a message lost), the check finds
exactly those, repair makes it clean, and a second repair has nothing to do."""

import json
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from domain.documents import VectorRecord, chunk_id, vector_ids, version_id
from domain.status import JobStatus
from pipeline.bootstrap import Services
from pipeline.check import check, repair
from pipeline.producer import enqueue, file_event
from pipeline.search import search
from tests.support.fake_openai import FakeOpenAI
from tests.support.local_pipeline import (
    DIMENSION,
    SAMPLES,
    ingest_samples,
    inline_services,
    pipeline_env,
)
from tests.support.workers import wait_for

pytestmark = pytest.mark.integration

TENANT = "acme"
ORPHAN_OBJECTS = (f"{TENANT}/{'1' * 64}", f"{TENANT}/derived/{'2' * 64}/chunks-old.json")
EXTRA = SAMPLES.parent / "tests" / "data" / "search" / "rye-bread.md"


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def unit_vector(seed: int) -> list[float]:
    values = np.random.default_rng(seed).normal(size=DIMENSION)
    return (values / np.linalg.norm(values)).tolist()


def break_everything(services: Services, dispatcher) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Ingest five documents and another tenant's two, then break the tenant's state once in
    each way; returns the (kind, ref) a check must find."""
    jobs = ingest_samples(services, TENANT, 5)
    ingest_samples(services, "other", 2)
    first, second, third, fourth = jobs[:4]
    expected: set[tuple[str, str]] = set()

    # Vectors of a current version deleted.
    lost = vector_ids(first.document_id, first.job_id, first.chunk_count or 0)[:2]
    services.vectors.delete_ids(TENANT, lost)
    expected.add(("missing_vectors", first.document_id))
    # Objects of current versions deleted: one document's embeddings, another's content.
    assert second.embeddings_key
    assert third.object_key
    services.objects.delete_file(second.embeddings_key)
    services.objects.delete_file(third.object_key)
    expected |= {("missing_objects", second.embeddings_key),
                 ("missing_objects", third.object_key)}
    # Orphan vectors: of no document at all, and of a version the document never had.
    orphans = [chunk_id(version_id("doc_" + "f" * 32, "gone"), 0),
               chunk_id(version_id(fourth.document_id, "never-current"), 3)]
    services.vectors.upsert_vector(TENANT, [
        VectorRecord(id=vid, values=unit_vector(i), metadata={"document_id": vid[:36]})
        for i, vid in enumerate(orphans)])
    expected |= {("orphan_vectors", vid) for vid in orphans}
    # Orphan objects no record or job uses.
    for key in ORPHAN_OBJECTS:
        services.objects.put_bytes(key, b"left behind", {})
    expected |= {("orphan_objects", key) for key in ORPHAN_OBJECTS}
    # A lost message: the job is recorded, its dispatch never reaches a worker.
    dispatcher.paused = True
    stuck = enqueue(services, file_event(EXTRA, TENANT, services.settings.max_upload_bytes))
    dispatcher.paused = False
    assert services.jobs.get(stuck.job_id).status is JobStatus.QUEUED
    expected.add(("stuck_jobs", stuck.job_id))
    return expected


def found(services: Services) -> set[tuple[str, str]]:
    report = check(services, TENANT, in_flight=(), stuck_after_seconds=0,
                   orphan_grace_seconds=0)
    return {(finding.kind, finding.ref) for finding in report.findings}


def test_check_finds_exactly_what_was_broken_and_repair_makes_it_clean(env, openai):
    services, dispatcher = inline_services(pipeline_env(env, openai))
    assert found(services) == set()
    expected = break_everything(services, dispatcher)

    assert found(services) == expected
    assert check(services, "other", in_flight=(), stuck_after_seconds=0,
                 orphan_grace_seconds=0).clean  # nothing crosses tenants

    report = check(services, TENANT, in_flight=(), stuck_after_seconds=0,
                   orphan_grace_seconds=0)
    repairs = repair(services, report)

    assert repairs.left == []
    assert sum(repairs.fixed.values()) == len(expected)
    assert found(services) == set()
    assert sum(repair(services, report).fixed.values()) == len(expected)  # idempotent
    assert found(services) == set()
    hits = search(services, TENANT, "how do I keep a sourdough starter alive", top_k=5)
    assert hits
    assert all(hit.text for hit in hits)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", "check", *args], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_cli_exits_4_on_problems_3_once_repaired_and_0_when_clean(env, openai):
    env = {**pipeline_env(env, openai), "CONVERSA_MAINTENANCE__ORPHAN_GRACE_SECONDS": "0",
           "CONVERSA_MAINTENANCE__STUCK_AFTER_SECONDS": "0.5"}
    services, dispatcher = inline_services(env)
    expected = break_everything(services, dispatcher)
    wait_for(lambda: services.jobs.list_stale(older_than_seconds=0.5), 30, "a stale job")

    first = cli(env, "--tenant", TENANT, "--json")
    assert first.returncode == 4, first.stderr
    counts = json.loads(first.stdout)["counts"]
    assert sum(counts.values()) == len(expected)
    assert counts["stuck_jobs"] == 1

    repaired = cli(env, "--tenant", TENANT, "--repair")
    assert repaired.returncode == 3, repaired.stdout + repaired.stderr
    assert "clean after repair" in repaired.stdout

    # The stuck job's stage is on the broker now (no worker runs it): it is not stuck.
    again = cli(env, "--tenant", TENANT)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip() == f"{TENANT}: clean"
    assert cli(env, "--tenant", TENANT, "--all-tenants").returncode == 2
