"""The index stage appends a new version's vectors on its first attempt (LanceDB's ``add``)
and upserts on any other: runs of one job's index stage in any order leave each id once."""

import dataclasses
from pathlib import Path

from adapters.lancedb.vector_index import LanceDBVectorIndex
from domain.status import STAGES, JobStatus, Stage
from pipeline.attempts import attempt_stage
from pipeline.bootstrap import Services
from pipeline.producer import enqueue, file_event
from pipeline.stages import STAGE_FUNCTIONS
from tests.support.inline import InlineDispatcher, memory_services

TEXT = "The telescope observed distant galaxies and nebulae in the night sky. " * 60


def embedded_job(tmp_path: Path) -> tuple[Services, str]:
    services = memory_services(tmp_path)
    services = dataclasses.replace(
        services, vectors=LanceDBVectorIndex(tmp_path / "vectors", services.embedder.dimension))
    assert isinstance(services.dispatcher, InlineDispatcher)
    services.dispatcher.services = services
    services.dispatcher.paused = True
    path = tmp_path / "doc.txt"
    path.write_text(TEXT)
    job_id = enqueue(services, file_event(path, "default", 10**6)).job_id
    for stage in STAGES[:STAGES.index(Stage.INDEX)]:
        attempt_stage(services, stage, job_id, 0)
    assert services.jobs.get(job_id).status is JobStatus.EMBEDDED
    return services, job_id


def stored_ids(services: Services) -> list[str]:
    return services.vectors.list_ids("default")


def test_a_first_attempt_alone_stores_each_vector_once(tmp_path: Path) -> None:
    services, job_id = embedded_job(tmp_path)
    job = attempt_stage(services, Stage.INDEX, job_id, 0)
    assert job.status is JobStatus.DONE
    assert job.attempts["index"] == 1
    ids = stored_ids(services)
    assert len(ids) == job.chunk_count
    assert len(set(ids)) == len(ids) > 1


def test_a_second_run_that_writes_before_the_first_leaves_no_duplicates(tmp_path: Path
                                                                        ) -> None:
    services, job_id = embedded_job(tmp_path)
    first = services.jobs.begin_attempt(job_id, Stage.INDEX)  # counted 1, then it stalls
    assert first.attempts["index"] == 1
    second = attempt_stage(services, Stage.INDEX, job_id, 0)  # a redelivery runs it all
    assert second.status is JobStatus.DONE
    STAGE_FUNCTIONS[Stage.INDEX](services, job_id, first)  # the stalled run goes on

    ids = stored_ids(services)
    assert len(ids) == second.chunk_count
    assert len(set(ids)) == len(ids) > 1
    assert services.jobs.get(job_id).status is JobStatus.DONE
