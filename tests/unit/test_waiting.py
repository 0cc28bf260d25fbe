"""Waiting for jobs (``conversa ingest --wait``): one repository read per poll for all jobs."""

import dataclasses
import itertools
from collections.abc import Sequence

import pytest

from adapters.memory.fakes import MemoryJobRepository
from domain.errors import ConversaError, NotFoundError
from domain.job import IngestionJob, StageError, utcnow
from domain.status import FORWARD_ORDER, JobStatus, Stage
from pipeline.bootstrap import Services
from pipeline.waiting import wait_for_jobs
from tests.support.inline import memory_services


class CountingJobs(MemoryJobRepository):
    """The memory repository, counting reads and the ids each ``get_many`` asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.single_reads = 0
        self.many_reads: list[list[str]] = []

    def get(self, job_id: str) -> IngestionJob:
        self.single_reads += 1
        return super().get(job_id)

    def get_many(self, job_ids: Sequence[str]) -> list[IngestionJob]:
        self.many_reads.append(list(job_ids))
        return super().get_many(job_ids)


@pytest.fixture
def jobs() -> CountingJobs:
    return CountingJobs()


@pytest.fixture
def services(tmp_path, jobs: CountingJobs) -> Services:
    return dataclasses.replace(memory_services(tmp_path), jobs=jobs)


def job(job_id: str) -> IngestionJob:
    now = utcnow()
    return IngestionJob(job_id=job_id, tenant="acme", document_id=f"doc-{job_id}",
                        source=f"{job_id}.txt", source_uri=f"file:///tmp/{job_id}",
                        source_name=f"{job_id}.txt", status=JobStatus.QUEUED,
                        created_at=now, updated_at=now)


def finish(repo: MemoryJobRepository, job_id: str) -> None:
    for expected, new in itertools.pairwise(FORWARD_ORDER):
        repo.transition(job_id, expected, new, {})


def test_each_poll_reads_the_running_jobs_at_once(services: Services, jobs: CountingJobs):
    ids = [f"job-{n}" for n in range(6)]
    for job_id in ids:
        jobs.create(job(job_id))
    finish(jobs, "job-0")
    pending = ["job-3", "job-1", "job-5", "job-2", "job-4"]

    def workers_move_on(_: float) -> None:  # two jobs end between polls; job-4 fails
        for job_id in pending[:2]:
            if job_id == "job-4":
                jobs.fail(job_id, StageError(stage=Stage.EXTRACT, type="X", message="bad"))
            else:
                finish(jobs, job_id)
        del pending[:2]

    seen: list[int] = []
    result = wait_for_jobs(services, ids, 60, sleep=workers_move_on,
                           on_progress=lambda js: seen.append(
                               sum(j.status.is_terminal for j in js)))

    assert [j.job_id for j in result] == ids
    assert [j.status for j in result] == [JobStatus.DONE] * 4 + [JobStatus.FAILED,
                                                                 JobStatus.DONE]
    assert jobs.single_reads == 0
    assert jobs.many_reads == [ids, ids[1:], ["job-2", "job-4", "job-5"], ["job-4"]]
    assert seen == [1, 3, 5, 6]


def test_jobs_still_running_at_the_deadline_are_an_error(services: Services,
                                                          jobs: CountingJobs):
    jobs.create(job("job-1"))
    jobs.create(job("job-2"))
    finish(jobs, "job-2")
    now = [0.0]

    def tick(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(ConversaError, match="1 jobs still running after 2 s"):
        wait_for_jobs(services, ["job-1", "job-2"], 2, clock=lambda: now[0], sleep=tick)
    assert all(ids == ["job-1"] for ids in jobs.many_reads[1:])


def test_a_job_that_does_not_exist_is_not_found(services: Services, jobs: CountingJobs):
    jobs.create(job("job-1"))
    with pytest.raises(NotFoundError, match="job-ghost"):
        wait_for_jobs(services, ["job-1", "job-ghost"], 5, sleep=lambda _: None)


def test_later_polls_read_a_window_of_the_running_jobs(services: Services, jobs: CountingJobs):
    ids = [f"job-{n}" for n in range(7)]
    for job_id in ids:
        jobs.create(job(job_id))
    finish(jobs, "job-5")  # ended early, further on than the window

    def workers_move_on(_: float) -> None:  # the next job in order ends between polls
        states = MemoryJobRepository.get_many(jobs, ids)  # not counted as a poll
        finish(jobs, next(j.job_id for j in states if not j.status.is_terminal))

    result = wait_for_jobs(services, ids, 60, window=3, sleep=workers_move_on)

    assert [j.status for j in result] == [JobStatus.DONE] * 7
    assert jobs.many_reads == [ids, ["job-0", "job-1", "job-2"], ["job-1", "job-2", "job-3"],
                               ["job-2", "job-3", "job-4"], ["job-3", "job-4", "job-6"],
                               ["job-4", "job-6"], ["job-6"]]
