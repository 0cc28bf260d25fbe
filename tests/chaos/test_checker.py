"""The chaos checker on hand-made store contents: a clean run passes, and each kind of damage
is counted in its own column (so no column is a check that cannot fail)."""

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.documents import (
    Document,
    SearchHit,
    content_key,
    derived_key,
    vector_ids,
    version_id,
)
from domain.versions import Version
from tests.support.chaos_check import Delete, Ledger, StoreView, Upload, check, table

NOW = 1_800_000_000.0
A, B = "tenant-a", "tenant-b"


def _job(job_id: str, tenant: str, doc: str, sha: str, status: str = "done",
         ended: float = NOW + 5) -> dict[str, Any]:
    chunks = derived_key(tenant, sha, "chunks-x.json")
    return {"_id": job_id, "tenant": tenant, "document_id": doc, "source": doc,
            "status": status, "object_key": content_key(tenant, sha), "chunks_key": chunks,
            "embeddings_key": derived_key(tenant, sha, "embeddings-m.npy"), "chunk_count": 2,
            "source_uri": f"object:{tenant}/incoming/{job_id}",
            "error": {"stage": "extract", "message": "corrupt PDF"} if status == "failed"
            else None,
            "stage_times": {status: datetime.fromtimestamp(ended, UTC)}}


class World:
    """A consistent little store: two tenants, one document each, plus a deleted one."""

    def __init__(self) -> None:
        sha_a, sha_b, sha_gone = "a" * 64, "b" * 64, "c" * 64
        self.ledger = Ledger(
            uploads=[Upload(A, "one", "doc_a", "job_a", "zqmarkera", sha_a, "cli", NOW),
                     Upload(B, "two", "doc_b", "job_b", "zqmarkerb", sha_b, "api", NOW),
                     Upload(A, "gone", "doc_gone", "job_gone", "zqmarkergone", sha_gone,
                            "api", NOW)],
            deletes=[Delete(A, "doc_gone", NOW + 10)])
        self.jobs = {"job_a": _job("job_a", A, "doc_a", sha_a),
                     "job_b": _job("job_b", B, "doc_b", sha_b),
                     "job_gone": _job("job_gone", A, "doc_gone", sha_gone)}
        self.records = {(A, "doc_a"): self._record("job_a", deleted=False),
                        (B, "doc_b"): self._record("job_b", deleted=False),
                        (A, "doc_gone"): self._record("job_gone", deleted=True)}
        self.keys = [k for j in ("job_a", "job_b") for k in (
            self.jobs[j]["object_key"], self.jobs[j]["chunks_key"],
            self.jobs[j]["embeddings_key"])]
        self.vectors: dict[str, dict[str, dict[str, Any]]] = {
            A: {vid: {"document_id": "doc_a"} for vid in self._ids("job_a")},
            B: {vid: {"document_id": "doc_b"} for vid in self._ids("job_b")}}
        self.texts = {"doc_a": "text zqmarkera", "doc_b": "text zqmarkerb"}

    def _ids(self, job_id: str) -> list[str]:
        job = self.jobs[job_id]
        return vector_ids(job["document_id"], job_id, job["chunk_count"])

    def _record(self, job_id: str, *, deleted: bool) -> Document:
        job = self.jobs[job_id]
        stamp = datetime.fromtimestamp(NOW, UTC)
        served = None if deleted else Version(
            job_id=job_id, created_at=stamp, sha256=job["object_key"][-64:],
            object_key=job["object_key"], size=10, source_name=job["source"],
            content_type="text/plain", chunks_key=job["chunks_key"],
            embeddings_key=job["embeddings_key"], chunk_count=job["chunk_count"],
            vector_version=version_id(job["document_id"], job_id))
        return Document(document_id=job["document_id"], tenant=job["tenant"],
                        source=job["source"], source_name=job["source"], served=served,
                        created_at=stamp, updated_at=stamp, deleted=deleted)

    def search(self, tenant: str, query: str, top_k: int) -> list[SearchHit]:
        hits = []
        for vid, metadata in self.vectors.get(tenant, {}).items():
            doc = str(metadata["document_id"])
            text = self.texts.get(doc, "")
            if query in text:
                hits.append(SearchHit(document_id=doc, chunk_index=int(vid.rsplit("#")[1]),
                                      score=1.0, text=text, source=doc, keywords=[]))
        return hits[:top_k]

    def view(self) -> StoreView:
        return StoreView(jobs=self.jobs, document_rows=Counter(self.records.keys()),
                         documents=lambda t, d: self.records.get((t, d)),
                         object_keys=self.keys, vectors=self.vectors, search=self.search)


def test_a_clean_store_passes_with_every_column_zero() -> None:
    report = check("clean", World().ledger, World().view(), fault_at=NOW + 1)
    assert report.ok, report.problems
    assert (report.jobs, report.done, report.failed) == (3, 3, 0)
    assert report.recovery == [4.0, 4.0, 4.0]
    assert "| clean " in table([report])


Damage = Callable[[World], None]


def _stuck(world: World) -> None:
    world.jobs["job_a"]["status"] = "embedded"


def _failed_without_reason(world: World) -> None:
    world.jobs["job_b"].update(status="failed", error=None)


def _missing_vector(world: World) -> None:
    world.vectors[A].pop(next(iter(world.vectors[A])))


def _second_version(world: World) -> None:
    world.vectors[A]["doc_a.0123456789ab#0"] = {"document_id": "doc_a"}


def _unaccepted_job(world: World) -> None:
    world.jobs["job_x"] = _job("job_x", A, "doc_x", "d" * 64)


def _orphan_object(world: World) -> None:
    world.keys.append(f"{A}/incoming/leftover")


def _missing_object(world: World) -> None:
    world.keys.remove(world.jobs["job_a"]["chunks_key"])


def _leaked_vector(world: World) -> None:
    world.vectors[B].update(world.vectors[A])


def _leaked_hit(world: World) -> None:
    world.texts["doc_b"] = "text zqmarkerb and zqmarkera"


def _deleted_still_indexed(world: World) -> None:
    world.vectors[A].update({vid: {"document_id": "doc_gone"}
                             for vid in world._ids("job_gone")})
    world.texts["doc_gone"] = "zqmarkergone"


def _deleted_record_live(world: World) -> None:
    world.records[(A, "doc_gone")] = world.records[(A, "doc_gone")].model_copy(
        update={"deleted": False})


@pytest.mark.parametrize(("damage", "column"), [
    (_stuck, "lost"),
    (_failed_without_reason, "lost"),
    (_missing_vector, "lost"),
    (_second_version, "duplicated"),
    (_unaccepted_job, "duplicated"),
    (_orphan_object, "orphaned"),
    (_missing_object, "orphaned"),
    (_leaked_vector, "cross_tenant"),
    (_leaked_hit, "cross_tenant"),
    (_deleted_still_indexed, "deleted_found"),
    (_deleted_record_live, "deleted_found"),
])
def test_each_kind_of_damage_is_counted(damage: Damage, column: str) -> None:
    world = World()
    damage(world)
    report = check("damaged", world.ledger, world.view())
    assert not report.ok
    assert getattr(report, column) >= 1, report.problems


def test_a_job_slower_than_its_bound_fails_the_run() -> None:
    world = World()
    report = check("slow", world.ledger, world.view(), fault_at=NOW)
    report.recovery_bound = 3.0
    assert report.too_slow
    assert not report.ok


def test_recovery_counts_from_the_last_strike_before_a_job_ended() -> None:
    world = World()  # every job ends at NOW + 5
    report = check("strikes", world.ledger, world.view(), strikes=[NOW + 1, NOW + 4, NOW + 9])
    assert report.recovery == [1.0, 1.0, 1.0]  # from NOW + 4, not from the first strike


def _second_upload(world: World, accepted_at: float) -> None:
    """A new version of doc_a, done at NOW + 8, whose vectors are what the index holds."""
    sha = "e" * 64
    world.ledger.uploads.append(Upload(A, "one", "doc_a", "job_a2", "zqmarkera2", sha, "api",
                                       accepted_at))
    world.jobs["job_a2"] = _job("job_a2", A, "doc_a", sha, ended=NOW + 8)


def test_overlapping_uploads_may_end_in_either_order() -> None:
    world = World()
    _second_upload(world, accepted_at=NOW + 1)  # before job_a ended (NOW + 5)
    report = check("overlap", world.ledger, world.view())
    assert report.ok, report.problems  # the record still serving job_a is one of the options


def test_an_upload_after_the_previous_ended_must_become_current() -> None:
    world = World()
    _second_upload(world, accepted_at=NOW + 6)  # after job_a ended
    report = check("sequential", world.ledger, world.view())
    assert report.duplicated >= 1, report.problems  # the record serves superseded content
