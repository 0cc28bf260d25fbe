"""Search skips a candidate whose stored chunks are missing or unreadable, counts it, and
answers from the rest: one broken document never fails the tenant's search."""

import pytest

from pipeline.producer import enqueue, file_event
from pipeline.search import search
from tests.support.inline import memory_services

STARS = "The telescope observed distant galaxies and nebulae in the night sky. " * 30
STARS_TOO = "Telescope mirrors gather the faint light of galaxies far beyond our own. " * 30


@pytest.fixture
def services(tmp_path):
    return memory_services(tmp_path)


def ingest(services, path, text):
    path.write_text(text)
    return services.jobs.get(enqueue(services, file_event(path, "default", 10**6)).job_id)


@pytest.mark.parametrize("damage", ["missing", "unreadable"])
def test_a_candidate_without_its_chunks_is_skipped_and_counted(services, tmp_path, damage):
    broken = ingest(services, tmp_path / "broken.txt", STARS)
    intact = ingest(services, tmp_path / "intact.txt", STARS_TOO)
    assert {hit.document_id for hit in search(services, "default", "telescope galaxies")} == {
        broken.document_id, intact.document_id}
    if damage == "missing":
        services.objects.delete_file(broken.chunks_key)
    else:
        services.objects.put_bytes(broken.chunks_key, b"{not json", {})

    hits = search(services, "default", "telescope galaxies", top_k=5)

    assert hits
    assert {hit.document_id for hit in hits} == {intact.document_id}
    skipped = services.search_metrics.skipped
    assert set(skipped) == {"chunks_unreadable"}
    assert skipped["chunks_unreadable"] >= 1  # each of its candidates, in each round


def test_nothing_is_counted_when_every_candidate_is_whole(services, tmp_path):
    ingest(services, tmp_path / "stars.txt", STARS)
    assert search(services, "default", "telescope galaxies")
    assert services.search_metrics.skipped == {}
