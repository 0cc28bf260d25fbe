"""Fair order across tenants on real workers: a small tenant's jobs enqueued behind a bulk
tenant's backlog finish before most of that backlog (and, with fairness off, after it)."""

import pytest

from domain.status import JobStatus
from pipeline.producer import enqueue, file_event
from tests.support.workers import celery_worker, producer, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BACKLOG = 30
SMALL = 3


@pytest.mark.parametrize("fair", [True, False], ids=["fair-lanes", "one-fifo-lane"])
def test_a_small_tenant_is_not_stuck_behind_a_bulk_tenant(env, tmp_path, fair):
    env = {**env, "CONVERSA_WORKER__FAIR_LANES": str(fair).lower()}
    services, _ = producer(env)
    folder = tmp_path / "docs"
    folder.mkdir()

    def job_of(tenant: str, n: int) -> str:
        path = folder / f"{tenant}-{n}.txt"
        path.write_text(f"Note {n} of {tenant}: the ferry left the harbour at dawn.")
        return enqueue(services, file_event(path, tenant, 10**6)).job_id

    # Everything waits on the broker before a worker starts: the order is the broker's alone.
    bulk = [job_of("bulk", n) for n in range(BACKLOG)]
    small = [job_of("small", n) for n in range(SMALL)]
    with celery_worker(env, tmp_path / "worker.log", concurrency=1):
        finished = {job.job_id: job for job in wait_terminal(services, bulk + small, 300)}

    assert {job.status for job in finished.values()} == {JobStatus.DONE}
    done_at = {job_id: job.stage_times[JobStatus.DONE.value] for job_id, job in finished.items()}
    last_small = max(done_at[job_id] for job_id in small)
    bulk_before = sum(1 for job_id in bulk if done_at[job_id] < last_small)
    if fair:
        assert bulk_before < BACKLOG // 2, f"{bulk_before} of the backlog went first"
    else:
        assert bulk_before > BACKLOG // 2, f"only {bulk_before} of the backlog went first"
