"""`conversa reindex` on real servers: a tenant moves from the local LanceDB index to the fake
Pinecone server from its stored embeddings (the fake OpenAI server sees no embedding call),
search answers from the old index until the switch, and a run killed mid-copy resumes."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.factory import local_vectors_dir
from adapters.lancedb.vector_index import LanceDBVectorIndex
from domain.indexes import parse_target
from pipeline.bootstrap import Services
from pipeline.search import search
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_pinecone import FakePinecone
from tests.support.local_pipeline import (
    DIMENSION,
    SAMPLES,
    ingest,
    ingest_samples,
    inline_services,
    pipeline_env,
    served_ids,
)
from tests.support.workers import wait_for

pytestmark = pytest.mark.integration

EMBEDDINGS = "/v1/embeddings"
QUERY = "how do I keep a sourdough starter alive"


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def pinecone() -> Iterator[FakePinecone]:
    with FakePinecone(dimension=DIMENSION) as fake:
        yield fake


def local_folder(services: Services) -> Path:
    """The LanceDB folder of the settings' index (one per embedding model)."""
    return local_vectors_dir(services.settings, services.embedder.model_name)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_a_tenant_moves_to_pinecone_without_one_embedder_call(env, openai, pinecone):
    env = pipeline_env(env, openai, pinecone)
    services, _ = inline_services(env)
    jobs = ingest_samples(services, "acme")
    others = ingest_samples(services, "other", 2)
    before = [hit.document_id for hit in search(services, "acme", QUERY, top_k=3)]
    calls = len(openai.admitted(EMBEDDINGS))

    run = cli(env, "reindex", "--tenant", "acme", "--to", f"pinecone:{pinecone.url}", "--json")

    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout.splitlines()[-1])
    assert record["state"] == "done"
    assert record["documents_copied"] == len(jobs)
    assert record["vectors_copied"] == len(served_ids(jobs))
    assert len(openai.admitted(EMBEDDINGS)) == calls  # not one embedding request
    assert pinecone.ids("acme") == served_ids(jobs)
    assert "other" not in pinecone.namespaces()  # only the tenant asked for moved
    route = services.indexes.get_route("acme") if services.indexes else None
    assert route is not None
    assert route.active == parse_target(f"pinecone:{pinecone.url}")

    pinecone.clear_requests()
    after = [hit.document_id for hit in search(services, "acme", QUERY, top_k=3)]
    assert after == before
    assert pinecone.requests("/query")  # answered by the new index
    other_hits = search(services, "other", QUERY, top_k=1)  # still from LanceDB
    assert other_hits
    assert other_hits[0].document_id in {job.document_id for job in others}

    # The old index is left as it was; what is ingested now goes to the new one only.
    local = LanceDBVectorIndex(local_folder(services), DIMENSION)
    assert local.list_ids("acme") == served_ids(jobs)
    extra = SAMPLES.parent / "tests" / "data" / "search" / "rye-bread.md"
    new = ingest(services, extra, "acme")
    assert set(served_ids([new])) <= set(pinecone.ids("acme"))
    assert not set(served_ids([new])) & set(local.list_ids("acme"))


def test_a_killed_reindex_resumes_and_search_stays_on_the_old_index_until_the_switch(
        env, openai, pinecone):
    env = pipeline_env(env, openai, pinecone)
    services, _ = inline_services(env)
    jobs = ingest_samples(services, "acme")
    assert services.indexes is not None
    calls = len(openai.admitted(EMBEDDINGS))
    target = f"pinecone:{pinecone.url}"
    pinecone.slow_next(1000, 0.4, path="/vectors/upsert")

    proc = subprocess.Popen([sys.executable, "-m", "cli", "reindex", "--tenant", "acme",
                             "--to", target, "--step", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_for(lambda: (run := services.indexes.get_run("acme")) is not None  # type: ignore[union-attr]
                 and run.documents_copied >= 2, 120, "two documents copied")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    killed = services.indexes.get_run("acme")
    assert killed is not None
    assert killed.state == "copying"
    assert killed.last_document_id
    route = services.indexes.get_route("acme")
    assert route is not None
    assert route.active is None
    assert route.building is not None

    # Until the switch, search answers from LanceDB, and new writes reach both indexes.
    pinecone.clear_faults()
    pinecone.clear_requests()
    assert search(services, "acme", QUERY, top_k=3)
    assert not pinecone.requests("/query")
    extra = SAMPLES.parent / "tests" / "data" / "search" / "rye-bread.md"
    new = ingest(services, extra, "acme")
    assert set(served_ids([new])) <= set(pinecone.ids("acme"))
    calls = len(openai.admitted(EMBEDDINGS))
    pinecone.clear_requests()  # also what the killed run had in flight, answered by now

    resumed = cli(env, "reindex", "--tenant", "acme", "--to", target, "--json")

    assert resumed.returncode == 0, resumed.stderr
    record = json.loads(resumed.stdout.splitlines()[-1])
    assert record["state"] == "done"
    assert record["starts"] == 2
    assert len(openai.admitted(EMBEDDINGS)) == calls
    remaining = sorted({j.document_id for j in [*jobs, new]
                        if j.document_id > killed.last_document_id})
    # Only what the killed run had not done is copied again: every remaining document, and
    # none that the killed run recorded as done. (The catch-up may upsert a remaining one
    # again, when it changed during the copy.)
    upserted = {vector_id.split(".", 1)[0]
                for request in pinecone.requests("/vectors/upsert")
                for vector_id in request.vector_ids}
    assert upserted == set(remaining)
    assert pinecone.ids("acme") == served_ids([*jobs, new])
    route = services.indexes.get_route("acme")
    assert route is not None
    assert route.active == parse_target(target)
    assert route.building is None


def test_reindex_refuses_bad_targets_and_a_second_target_while_one_is_under_way(
        env, openai, pinecone, tmp_path):
    env = pipeline_env(env, openai, pinecone)
    services, _ = inline_services(env)
    ingest_samples(services, "acme", 1)

    assert cli(env, "reindex", "--tenant", "acme", "--to", "elastic:somewhere").returncode == 2
    assert cli(env, "reindex", "--tenant", "acme").returncode == 2
    assert cli(env, "reindex", "--tenant", "acme", "--all-tenants",
               "--to", f"lancedb:{tmp_path}").returncode == 2
    # The tenant's own LanceDB folder is not empty: refused, nothing changed.
    refused = cli(env, "reindex", "--tenant", "acme",
                  "--to", f"lancedb:{local_folder(services)}")
    assert refused.returncode == 1
    assert "already holds vectors" in refused.stderr
    assert services.indexes is not None
    assert services.indexes.get_route("acme") is None
    # Into another table of the same folder, it works.
    moved = cli(env, "reindex", "--tenant", "acme",
                "--to", f"lancedb:{local_folder(services)}#acme-v2")
    assert moved.returncode == 0, moved.stderr
    assert search(services, "acme", QUERY, top_k=1)
