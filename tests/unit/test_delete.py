"""Delete: vectors of every version, unshared objects, the record marked; never found again."""

import pytest

from domain.errors import NotFoundError
from domain.status import STAGES, JobStatus, Stage
from pipeline.documents import delete_document
from pipeline.producer import enqueue, file_event
from pipeline.search import search
from pipeline.stages import STAGE_FUNCTIONS
from tests.support.inline import memory_services

STARS = "The telescope observed distant galaxies and nebulae in the night sky. " * 30
BREAD = "Knead the bread dough, let it rise, then bake it in a hot oven until golden. " * 30


@pytest.fixture
def services(tmp_path):
    return memory_services(tmp_path)


def ingest(services, path, text):
    path.write_text(text)
    event = file_event(path, "default", services.settings.max_upload_bytes)
    return services.jobs.get(enqueue(services, event).job_id)


def test_delete_removes_everything_and_twice_is_fine(services, tmp_path):
    job = ingest(services, tmp_path / "stars.txt", STARS)

    first = delete_document(services, "default", job.document_id)
    second = delete_document(services, "default", job.document_id)

    assert first.document_id == second.document_id == job.document_id
    assert services.vectors.count("default") == 0
    assert services.objects.list_keys() == []
    assert services.documents.get("default", job.document_id).deleted
    assert search(services, "default", "telescope galaxies", top_k=5) == []
    with pytest.raises(NotFoundError):
        delete_document(services, "default", "doc_never_was")


def test_an_update_drops_the_old_versions_objects(services, tmp_path):
    path = tmp_path / "doc.txt"
    old = ingest(services, path, STARS)
    new = ingest(services, path, BREAD)

    keys = services.objects.list_keys()
    assert not any(old.sha256 in key for key in keys)
    assert any(new.sha256 in key for key in keys)
    delete_document(services, "default", new.document_id)
    assert services.objects.list_keys() == []


def test_an_update_keeps_old_content_another_document_has(services, tmp_path):
    other = ingest(services, tmp_path / "copy.txt", STARS)
    path = tmp_path / "doc.txt"
    ingest(services, path, STARS)
    ingest(services, path, BREAD)

    assert services.objects.head(other.object_key) is not None
    assert search(services, "default", "telescope galaxies", top_k=1)[0].document_id == (
        other.document_id)


def test_a_job_in_flight_does_not_bring_a_deleted_document_back(services, tmp_path):
    path = tmp_path / "doc.txt"
    first = ingest(services, path, STARS)
    services.dispatcher.paused = True
    path.write_text(BREAD)
    job = enqueue(services, file_event(path, "default", 10**6))
    for stage in STAGES[:STAGES.index(Stage.INDEX)]:
        STAGE_FUNCTIONS[stage](services, job.job_id)

    delete_document(services, "default", first.document_id)
    STAGE_FUNCTIONS[Stage.INDEX](services, job.job_id)

    assert services.jobs.get(job.job_id).status is JobStatus.DONE
    assert services.documents.get("default", first.document_id).deleted
    assert services.vectors.count("default") == 0
    assert search(services, "default", "bread oven", top_k=5) == []


def test_search_skips_a_deleted_document_even_if_its_vectors_remain(services, tmp_path):
    job = ingest(services, tmp_path / "stars.txt", STARS)
    record = services.documents.get("default", job.document_id)
    services.documents.put(record.model_copy(update={"deleted": True}),  # a delete cut short
                           record.revision)

    assert services.vectors.count("default") > 0
    assert search(services, "default", "telescope galaxies", top_k=5) == []
