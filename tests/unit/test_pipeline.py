"""The pipeline's use cases on in-memory fakes, wired through the composition root."""

from pathlib import Path

import pytest

from domain.documents import content_key, vector_ids
from domain.errors import ConversaError, NotFoundError, PermanentError
from domain.status import JobStatus, Stage
from pipeline import stages
from pipeline.documents import delete_document
from pipeline.producer import enqueue, file_event, upload_file_event
from pipeline.redrive import reconcile, retry
from pipeline.search import search
from tests.support.inline import memory_services

ASTRONOMY = "The telescope observed distant galaxies and nebulae in the night sky. " * 30
COOKING = "Knead the bread dough, let it rise, then bake it in a hot oven until golden. " * 30


@pytest.fixture
def services(tmp_path):
    return memory_services(tmp_path)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def ingest(services, path: Path, tenant: str = "default"):
    event = file_event(path, tenant, services.settings.max_upload_bytes)
    job = enqueue(services, event)
    return services.jobs.get(job.job_id)


def test_a_text_file_goes_through_every_stage_to_done(services, tmp_path):
    job = ingest(services, write(tmp_path, "stars.txt", ASTRONOMY))

    assert job.status is JobStatus.DONE
    assert set(job.stage_times) == {"stored", "recorded", "extracted", "embedded", "indexed",
                                    "done"}
    assert job.object_key == content_key("default", job.sha256)
    assert job.chunk_count == len(services.vectors.list_ids("default"))
    assert job.keywords
    document = services.documents.get("default", job.document_id)
    assert document.chunk_count == job.chunk_count
    assert document.job_id == job.job_id


def test_search_finds_the_matching_document_with_its_text(services, tmp_path):
    stars = ingest(services, write(tmp_path, "stars.txt", ASTRONOMY))
    ingest(services, write(tmp_path, "bread.md", COOKING))

    hits = search(services, "default", "bake bread in the oven", top_k=3)

    assert hits[0].source.endswith("bread.md")
    assert "oven" in hits[0].text
    assert hits[0].document_id != stars.document_id
    assert hits[0].score >= hits[-1].score


def test_search_is_scoped_to_the_tenant(services, tmp_path):
    ingest(services, write(tmp_path, "stars.txt", ASTRONOMY), tenant="acme")

    assert search(services, "other", "telescope galaxies", top_k=5) == []
    assert search(services, "acme", "telescope galaxies", top_k=5)


def test_running_each_stage_again_changes_nothing(services, tmp_path):
    job = ingest(services, write(tmp_path, "stars.txt", ASTRONOMY))
    before_vectors = services.vectors.list_ids("default")
    before_objects = services.objects.list_keys()
    before_job = services.jobs.get(job.job_id)

    for stage_function in stages.STAGE_FUNCTIONS.values():
        stage_function(services, job.job_id)

    assert services.vectors.list_ids("default") == before_vectors
    assert services.objects.list_keys() == before_objects
    assert services.jobs.get(job.job_id) == before_job


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("binary.txt", b"GIF89a\x01\x00\x01\x00\x00\x00" * 50, "unsupported content type"),
        ("bad-bom.txt", b"\xff\xfe\x00\x00garbage", "invalid utf-32 text"),
        ("blank.txt", b"   \n\n  ", "no text to index"),
    ],
)
def test_bad_input_fails_the_job_with_a_reason(services, tmp_path, name, content, reason):
    job = ingest(services, write(tmp_path, name, content))

    assert job.status is JobStatus.FAILED
    assert reason in job.error.message
    assert services.vectors.count("default") == 0


def test_other_jobs_are_unaffected_by_a_bad_one(services, tmp_path):
    bad = ingest(services, write(tmp_path, "bad.txt", b"\xff\xfe\x00\x00garbage"))
    good = ingest(services, write(tmp_path, "good.txt", COOKING))

    assert bad.status is JobStatus.FAILED
    assert good.status is JobStatus.DONE


def test_a_file_over_the_limit_is_refused_before_enqueue(tmp_path):
    services = memory_services(tmp_path, max_upload_bytes=10)
    big = write(tmp_path, "big.txt", "x" * 11)
    with pytest.raises(PermanentError) as refused:
        file_event(big, "default", 10)
    assert str(refused.value) == f"file too large: {big} is over the limit of 10 bytes"
    assert services.jobs.list_jobs() == []


def test_a_missing_path_is_refused_before_enqueue(tmp_path):
    with pytest.raises(PermanentError, match="no such file"):
        file_event(tmp_path / "missing.txt", "default", 100)


def test_the_store_stage_refuses_a_file_that_grew_past_the_limit(tmp_path):
    services = memory_services(tmp_path, max_upload_bytes=100)
    path = write(tmp_path, "grows.txt", "small")
    event = file_event(path, "default", 100)
    path.write_text("x" * 500)

    job = enqueue(services, event)

    assert services.jobs.get(job.job_id).status is JobStatus.FAILED
    assert services.jobs.get(job.job_id).error.message == (
        "file too large: over the limit of 100 bytes")


def test_a_file_deleted_after_enqueue_fails_with_a_reason(services, tmp_path):
    path = write(tmp_path, "gone.txt", COOKING)
    event = file_event(path, "default", 10_000)
    path.unlink()

    job = enqueue(services, event)

    failed = services.jobs.get(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error.stage is Stage.STORE
    assert "not found" in failed.error.message


def test_a_new_version_with_fewer_chunks_drops_the_surplus_vectors(services, tmp_path):
    path = write(tmp_path, "doc.txt", ASTRONOMY * 3)
    first = ingest(services, path)
    path.write_text(COOKING)
    second = ingest(services, path)

    assert first.document_id == second.document_id
    assert second.chunk_count < first.chunk_count
    expected = sorted(vector_ids(second.document_id, second.job_id, second.chunk_count))
    assert services.vectors.list_ids("default") == expected
    assert "oven" in search(services, "default", "bread oven", top_k=1)[0].text


def test_identical_content_is_stored_once(services, tmp_path):
    first = ingest(services, write(tmp_path, "a.txt", COOKING))
    second = ingest(services, write(tmp_path, "b.txt", COOKING))

    content_objects = [k for k in services.objects.list_keys() if "/derived/" not in k]
    assert content_objects == [first.object_key]
    assert second.object_key == first.object_key
    assert second.document_id != first.document_id
    for job in (first, second):
        assert len(services.vectors.list_ids("default", f"{job.document_id}.")) == job.chunk_count


def test_delete_removes_vectors_and_objects_and_is_repeatable(services, tmp_path):
    job = ingest(services, write(tmp_path, "stars.txt", ASTRONOMY))

    delete_document(services, "default", job.document_id)
    delete_document(services, "default", job.document_id)

    assert services.vectors.count("default") == 0
    assert services.objects.list_keys() == []
    assert search(services, "default", "telescope", top_k=5) == []
    assert services.documents.get("default", job.document_id).deleted


def test_delete_keeps_content_another_document_shares(services, tmp_path):
    first = ingest(services, write(tmp_path, "a.txt", COOKING))
    second = ingest(services, write(tmp_path, "b.txt", COOKING))

    delete_document(services, "default", first.document_id)

    assert services.objects.head(second.object_key) is not None
    assert search(services, "default", "bread", top_k=5)[0].document_id == second.document_id


def test_delete_of_an_unknown_or_foreign_document_is_not_found(services, tmp_path):
    job = ingest(services, write(tmp_path, "stars.txt", ASTRONOMY), tenant="acme")
    with pytest.raises(NotFoundError):
        delete_document(services, "other", job.document_id)
    with pytest.raises(NotFoundError):
        delete_document(services, "acme", "doc_missing")


def test_retry_re_runs_a_failed_job_from_its_failed_stage(services, tmp_path):
    path = write(tmp_path, "late.txt", COOKING)
    event = file_event(path, "default", 10_000)
    path.unlink()
    job = enqueue(services, event)
    assert services.jobs.get(job.job_id).status is JobStatus.FAILED

    path.write_text(COOKING)
    retried = retry(services, job.job_id)

    assert retried.status is JobStatus.QUEUED
    assert services.jobs.get(job.job_id).status is JobStatus.DONE
    assert services.jobs.get(job.job_id).error is None


def test_retry_refuses_a_job_that_has_not_failed(services, tmp_path):
    job = ingest(services, write(tmp_path, "ok.txt", COOKING))
    with pytest.raises(ConversaError, match="only failed jobs"):
        retry(services, job.job_id)


def test_reconcile_re_dispatches_jobs_whose_messages_were_lost(services, tmp_path):
    services.dispatcher.paused = True  # the broker "loses" every message
    event = file_event(write(tmp_path, "lost.txt", COOKING), "default", 10_000)
    job = enqueue(services, event)
    assert services.jobs.get(job.job_id).status is JobStatus.QUEUED

    services.dispatcher.paused = False
    redriven = reconcile(services, older_than_seconds=0)

    assert redriven == [(job.job_id, Stage.STORE)]
    assert services.jobs.get(job.job_id).status is JobStatus.DONE


def test_with_a_remote_object_store_the_producer_stages_the_bytes_there(tmp_path):
    services = memory_services(tmp_path, object_store="s3", s3={"bucket": "uploads"})
    path = write(tmp_path, "stars.txt", ASTRONOMY)

    event = upload_file_event(services, path, "acme")
    staged = event.source_uri.removeprefix("object:")
    assert staged.startswith("acme/incoming/")
    assert services.objects.get_bytes(staged) == path.read_bytes()

    job = services.jobs.get(enqueue(services, event).job_id)

    assert job.status is JobStatus.DONE
    assert services.objects.head(staged) is None
    assert services.objects.get_bytes(job.object_key) == path.read_bytes()


def test_a_staged_upload_is_kept_while_its_job_failed_in_store(tmp_path):
    services = memory_services(tmp_path, object_store="s3", s3={"bucket": "uploads"})
    event = upload_file_event(services, write(tmp_path, "empty.txt", b""), "acme")

    job = services.jobs.get(enqueue(services, event).job_id)

    assert job.status is JobStatus.FAILED
    assert services.objects.head(event.source_uri.removeprefix("object:")) is not None


def test_unchanged_content_is_done_at_enqueue_without_touching_the_broker(services, tmp_path):
    path = write(tmp_path, "stars.txt", ASTRONOMY)
    first = ingest(services, path)
    dispatched = list(services.dispatcher.dispatched)

    again = ingest(services, path)

    assert again.job_id != first.job_id
    assert again.status is JobStatus.DONE
    assert services.dispatcher.dispatched == dispatched  # nothing went on the broker
    assert (again.sha256, again.object_key, again.chunks_key, again.chunk_count) == (
        first.sha256, first.object_key, first.chunks_key, first.chunk_count)
    assert set(again.stage_times) == set(first.stage_times)
    assert services.documents.get("default", first.document_id).job_id == first.job_id


def test_changed_content_under_the_same_source_is_queued_as_usual(services, tmp_path):
    path = write(tmp_path, "stars.txt", ASTRONOMY)
    ingest(services, path)
    path.write_text(COOKING)
    dispatched = len(services.dispatcher.dispatched)

    changed = ingest(services, path)

    assert len(services.dispatcher.dispatched) == dispatched + 1
    assert changed.status is JobStatus.DONE
    assert "oven" in search(services, "default", "bread oven", top_k=1)[0].text


def test_an_unchanged_staged_upload_is_done_and_its_staged_copy_removed(tmp_path):
    services = memory_services(tmp_path, object_store="s3", s3={"bucket": "uploads"})
    path = write(tmp_path, "stars.txt", ASTRONOMY)
    enqueue(services, upload_file_event(services, path, "acme"))
    event = upload_file_event(services, path, "acme")

    job = enqueue(services, event)

    assert job.status is JobStatus.DONE
    assert services.objects.head(event.source_uri.removeprefix("object:")) is None
    assert not [key for key in services.objects.list_keys() if "/incoming/" in key]
