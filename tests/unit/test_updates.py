"""Updates without a gap: while a new version goes through the stages, and when it fails at
any of them, a search running beside it finds the old version or the new one, never nothing
and never a mix.

Faults are injected by adapters passed through the composition root (each wraps the real one
and fails only on the new version's data); the vector index is the in-memory one and LanceDB.
"""

import threading
import time
from collections.abc import Sequence

import pytest

from adapters.lancedb.vector_index import LanceDBVectorIndex
from adapters.memory.fakes import (
    HashEmbedder,
    MemoryJobRepository,
    MemoryObjectStore,
    MemoryVectorIndex,
)
from adapters.parsing.parsers import LibraryParser
from domain.documents import VectorRecord
from domain.errors import PermanentError
from domain.parsing import ParsedDocument
from domain.status import JobStatus, Stage
from pipeline.producer import enqueue, file_event
from pipeline.search import search
from tests.support.inline import InlineDispatcher, memory_services

OLD = "The telescope observed distant galaxies and nebulae in the night sky. " * 60
NEW = "Knead the bread dough, let it rise, then bake it in a hot oven until golden. " * 60
NEW_MARK = "bread"
PAUSE = 0.02  # each faulty step waits a little, so the searching thread runs in between


class Faults:
    def __init__(self) -> None:
        self.stage: Stage | None = None

    def hit(self, stage: Stage, is_new: bool) -> None:
        if not is_new:
            return
        time.sleep(PAUSE)
        if self.stage is stage:
            raise PermanentError(f"injected failure in {stage}")


class FaultyObjects(MemoryObjectStore):
    def __init__(self, faults: Faults) -> None:
        super().__init__()
        self.faults = faults

    def upload_file(self, key, path, metadata):  # type: ignore[no-untyped-def]
        self.faults.hit(Stage.STORE, NEW_MARK.encode() in path.read_bytes())
        return super().upload_file(key, path, metadata)


class FaultyJobs(MemoryJobRepository):
    """Fails the record stage's move (stored -> recorded) of the new version's job."""

    def __init__(self, faults: Faults) -> None:
        super().__init__()
        self.faults = faults
        self.new_sha = ""

    def transition(self, job_id, expected, new, fields):  # type: ignore[no-untyped-def]
        if new is JobStatus.RECORDED:
            self.faults.hit(Stage.RECORD, self.get(job_id).sha256 == self.new_sha)
        return super().transition(job_id, expected, new, fields)


class FaultyParser(LibraryParser):
    def __init__(self, faults: Faults) -> None:
        super().__init__()
        self.faults = faults

    def parse(self, data: bytes) -> ParsedDocument:
        self.faults.hit(Stage.EXTRACT, NEW_MARK.encode() in data)
        return super().parse(data)


class FaultyEmbedder(HashEmbedder):
    def __init__(self, faults: Faults) -> None:
        super().__init__()
        self.faults = faults

    def generate_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        self.faults.hit(Stage.EMBED, len(texts) > 1 and NEW_MARK in texts[0])
        return super().generate_embeddings(texts)


class FaultyVectors:
    """Wraps a vector index; fails the new version's upsert midway: after its vectors are in."""

    def __init__(self, inner, faults: Faults) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.faults = inner, faults

    def upsert_vector(self, tenant: str, vectors: Sequence[VectorRecord]) -> None:
        self.inner.upsert_vector(tenant, vectors)
        self.faults.hit(Stage.INDEX, any(NEW_MARK in str(v.metadata.get("keywords"))
                                         for v in vectors))

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


def build(tmp_path, index_kind: str, faults: Faults):
    inner = (MemoryVectorIndex() if index_kind == "memory"
             else LanceDBVectorIndex(tmp_path / "vectors", 64))
    jobs = FaultyJobs(faults)
    services = memory_services(
        tmp_path, chunking={"size_tokens": 24, "overlap_tokens": 4},
        dispatcher=InlineDispatcher(tries=1),
        adapters={"objects": FaultyObjects(faults), "jobs": jobs,
                  "embedder": FaultyEmbedder(faults), "vectors": FaultyVectors(inner, faults),
                  "parser": FaultyParser(faults)})
    return services, jobs


class Searcher(threading.Thread):
    """Searches without pause until stopped, recording which version each answer showed."""

    def __init__(self, services) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.services, self.stop, self.seen, self.errors = services, threading.Event(), [], []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                hits = search(self.services, "default", "telescope galaxies bread oven", top_k=3)
            except Exception as exc:  # recorded, then asserted on
                self.errors.append(exc)
                continue
            kinds = {"new" if NEW_MARK in hit.text else "old" for hit in hits}
            self.seen.append("nothing" if not hits else "mix" if len(kinds) > 1 else kinds.pop())

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        """Block until at least ``count`` answers were recorded (a loaded machine searches
        slowly: the count, not a sleep, says the searcher ran before and after the update)."""
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and not self.errors:
            assert time.monotonic() < deadline, f"only {len(self.seen)} searches in {timeout} s"
            time.sleep(0.005)


@pytest.mark.parametrize("index_kind", ["memory", "lancedb"])
@pytest.mark.parametrize("failing", [Stage.STORE, Stage.RECORD, Stage.EXTRACT, Stage.EMBED,
                                     Stage.INDEX, None])
def test_search_during_an_update_finds_old_or_new_never_nothing(tmp_path, index_kind, failing):
    faults = Faults()
    services, jobs = build(tmp_path, index_kind, faults)
    path = tmp_path / "doc.txt"
    path.write_text(OLD)
    old = services.jobs.get(enqueue(services, file_event(path, "default", 10**6)).job_id)
    assert old.status is JobStatus.DONE
    assert old.chunk_count > 2

    import hashlib

    path.write_text(NEW)
    jobs.new_sha = hashlib.sha256(NEW.encode()).hexdigest()
    faults.stage = failing
    searcher = Searcher(services)
    searcher.start()
    searcher.wait_for(3)
    job = services.jobs.get(enqueue(services, file_event(path, "default", 10**6)).job_id)
    searcher.wait_for(len(searcher.seen) + 3)
    searcher.stop.set()
    searcher.join(10)

    assert searcher.errors == []
    assert len(searcher.seen) > 5
    assert "nothing" not in searcher.seen
    assert "mix" not in searcher.seen
    after = search(services, "default", "telescope galaxies bread oven", top_k=3)
    if failing is None:
        assert job.status is JobStatus.DONE
        assert searcher.seen[-1] == "new"
        assert all(NEW_MARK in hit.text for hit in after)
        assert sorted(services.vectors.list_ids("default")) == sorted(
            services.vectors.list_ids("default", f"{job.document_id}."))
        assert services.vectors.count("default") == job.chunk_count
    else:
        assert job.status is JobStatus.FAILED
        assert job.error.stage is failing
        assert set(searcher.seen) == {"old"}
        assert after
        assert all(NEW_MARK not in hit.text for hit in after)
        document = services.documents.get("default", job.document_id)
        assert document.chunks_key == old.chunks_key  # still the searchable version


def test_an_update_removes_vectors_of_the_unversioned_id_form(tmp_path):
    services, _ = build(tmp_path, "memory", Faults())
    path = tmp_path / "doc.txt"
    path.write_text(OLD)
    first = services.jobs.get(enqueue(services, file_event(path, "default", 10**6)).job_id)
    legacy = VectorRecord(id=f"{first.document_id}#0", values=[1.0] + [0.0] * 63,
                          metadata={"document_id": first.document_id, "chunk_index": 0})
    services.vectors.upsert_vector("default", [legacy])
    path.write_text(NEW)

    second = services.jobs.get(enqueue(services, file_event(path, "default", 10**6)).job_id)

    assert second.status is JobStatus.DONE
    assert legacy.id not in services.vectors.list_ids("default")
    assert services.vectors.count("default") == second.chunk_count
