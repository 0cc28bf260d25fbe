"""The version model's defects, each reproduced on real servers: the MongoDB-wire server, the
filesystem object store and LanceDB for the pipeline functions (defects 1 and 2), and real
Celery workers on Valkey for the races (defects 3 and 4).

1. A failed update, then an update or delete of another document with the same content, must
   neither delete content still served nor break search for the tenant.
2. A delete after a failed update removes every object of the document, the served bytes too.
3. A job that started before a delete does not bring the document back.
4. Of concurrent uploads under one source, only the version served keeps vectors.
"""

import os
import signal
import time
from pathlib import Path

import pytest

from domain.documents import content_key, document_id
from domain.status import JobStatus
from pipeline.bootstrap import Services, bootstrap
from pipeline.documents import delete_document
from pipeline.producer import enqueue, file_event
from pipeline.search import search
from tests.support.inline import InlineDispatcher
from tests.support.workers import celery_worker, producer, settings_from, wait_terminal

pytestmark = [pytest.mark.integration]

TENANT = "default"
STARS = "The telescope observed distant galaxies and nebulae in the night sky. " * 40
BREAD = "Knead the bread dough, let it rise, then bake it in a hot oven until golden. " * 40
CORRUPT_PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\nthis is not a PDF at all\n" * 20


@pytest.fixture
def inline(env) -> Services:  # type: ignore[no-untyped-def]
    """The pipeline's functions in this process, on the real servers of ``env``."""
    dispatcher = InlineDispatcher(tries=1)
    services = bootstrap(settings_from(env), dispatcher=dispatcher)
    dispatcher.services = services
    return services


def ingest(services: Services, path: Path, content: str | bytes, source: str):  # type: ignore[no-untyped-def]
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    job = enqueue(services, file_event(path, TENANT, 10**8, source))
    return services.jobs.get(job.job_id)


def stored_objects(services: Services) -> list[str]:
    root = services.settings.objects_dir
    return sorted(str(p.relative_to(root)) for p in (root / TENANT).rglob("*") if p.is_file())


@pytest.mark.parametrize("then", ["update", "delete"])
def test_defect_1_content_served_by_one_survives_a_failed_update_and_anothers_change(
        inline, tmp_path, then):
    one = ingest(inline, tmp_path / "one-a.txt", STARS, "one")
    two = ingest(inline, tmp_path / "two-a.txt", STARS, "two")
    assert one.status is two.status is JobStatus.DONE
    failed = ingest(inline, tmp_path / "one-bad.pdf", CORRUPT_PDF, "one")
    assert failed.status is JobStatus.FAILED
    assert "one" in {hit.source for hit in search(inline, TENANT, "telescope galaxies")}

    if then == "update":
        assert ingest(inline, tmp_path / "two-b.txt", BREAD, "two").status is JobStatus.DONE
    else:
        delete_document(inline, TENANT, two.document_id)

    objects = stored_objects(inline)
    assert content_key(TENANT, one.sha256) in objects
    assert any(key.startswith(f"{TENANT}/derived/{one.sha256}/chunks-") for key in objects)
    assert any(key.endswith(".npy") and one.sha256 in key for key in objects)
    for query in ("telescope galaxies", "bread oven", "anything at all"):
        search(inline, TENANT, query)  # no tenant-wide failure, whatever the query
    hits = search(inline, TENANT, "telescope galaxies nebulae", top_k=3)
    assert hits
    assert {hit.source for hit in hits} == {"one"}


def test_defect_2_delete_after_a_failed_update_leaves_no_object_behind(inline, tmp_path):
    served = ingest(inline, tmp_path / "report-a.txt", STARS, "report")
    failed = ingest(inline, tmp_path / "report-bad.pdf", CORRUPT_PDF, "report")
    assert served.status is JobStatus.DONE
    assert failed.status is JobStatus.FAILED

    delete_document(inline, TENANT, served.document_id)

    assert stored_objects(inline) == []
    assert inline.vectors.list_ids(TENANT) == []
    assert search(inline, TENANT, "telescope galaxies") == []


@pytest.mark.slow
def test_defect_3_a_job_that_started_before_a_delete_does_not_bring_the_document_back(
        env, tmp_path):
    services, _ = producer(env)
    path = tmp_path / "report.txt"
    with celery_worker(env, tmp_path / "worker.log", concurrency=1) as worker:
        path.write_text(STARS)
        first = enqueue(services, file_event(path, TENANT, 10**8, "report"))
        [done] = wait_terminal(services, [first.job_id])
        assert done.status is JobStatus.DONE

        os.killpg(worker.pid, signal.SIGSTOP)  # the worker and its pool, frozen
        try:
            path.write_text(BREAD)
            second = enqueue(services, file_event(path, TENANT, 10**8, "report"))
            time.sleep(0.5)
            deleted = delete_document(services, TENANT, done.document_id)
            assert deleted.document_id == done.document_id
        finally:
            os.killpg(worker.pid, signal.SIGCONT)
        [after] = wait_terminal(services, [second.job_id], timeout=120)

    assert after.status is JobStatus.DONE
    record = services.documents.get(TENANT, done.document_id)
    assert record is not None
    assert record.deleted
    assert search(services, TENANT, "bread oven dough") == []
    assert search(services, TENANT, "telescope galaxies") == []
    assert services.vectors.list_ids(TENANT) == []
    assert stored_objects(services) == []


@pytest.mark.slow
def test_defect_4_of_eight_concurrent_versions_only_the_served_one_keeps_vectors(
        env, tmp_path):
    services, _ = producer(env)
    doc = document_id(TENANT, "report")
    with celery_worker(env, tmp_path / "worker.log", concurrency=3):
        for round_ in range(2):
            jobs = []
            for n in range(8):
                path = tmp_path / f"report-{round_}-{n}.txt"
                # the first uploads are the largest, so later ones overtake them
                unit = (STARS if n % 2 else BREAD)[:720]  # ten sentences
                path.write_text(f"Version {round_}.{n}. " + unit * (8 - n))
                jobs.append(enqueue(services, file_event(path, TENANT, 10**8, "report")))
            finished = wait_terminal(services, [job.job_id for job in jobs], timeout=180)
            assert [job.status for job in finished] == [JobStatus.DONE] * 8

            record = services.documents.get(TENANT, doc)
            assert record is not None
            assert not record.deleted
            newest = max(finished, key=lambda job: (
                job.created_at.replace(microsecond=job.created_at.microsecond // 1000 * 1000),
                job.job_id))
            assert record.job_id == newest.job_id  # the served version only moves forward
            assert record.claims == []
            ids = services.vectors.list_ids(TENANT, f"{doc}.")
            versions = {vector_id.rpartition("#")[0] for vector_id in ids}
            assert len(versions) == 1, f"round {round_}: vectors of {len(versions)} versions"
            assert len(ids) == record.chunk_count
            assert services.vectors.list_ids(TENANT) == ids
