"""Fair lanes: a job's lane follows from how many jobs its tenant has in flight, at enqueue,
retry and reconcile alike; with fairness off every job shares the first lane."""

from dataclasses import dataclass, field

import pytest

from adapters.celery.topology import LANE_PRIORITIES
from domain.events import UploadEvent
from domain.status import Stage
from pipeline.bootstrap import Services
from pipeline.fairness import LANE_BOUNDS, LANES, lane_for
from pipeline.producer import enqueue
from pipeline.redrive import reconcile
from tests.support.inline import memory_services


@dataclass
class RecordingDispatcher:
    """Keeps what was dispatched; runs nothing, so every job stays in flight."""

    sent: list[tuple[str, Stage, int]] = field(default_factory=list)

    def dispatch(self, job_id: str, stage: Stage, lane: int = 0) -> None:
        self.sent.append((job_id, stage, lane))


def services_with(tmp_path, dispatcher: RecordingDispatcher, **settings: object) -> Services:
    return memory_services(tmp_path, dispatcher=dispatcher, **settings)


def upload(tenant: str, n: int) -> UploadEvent:
    return UploadEvent(tenant=tenant, source=f"doc-{n}", source_uri=f"file:///tmp/{n}.txt",
                       source_name=f"{n}.txt", size=10)


def test_lanes_step_at_the_bounds():
    assert [lane_for(n) for n in (1, 2, 3, 8, 9, 32, 33, 10_000)] == [0, 0, 1, 1, 2, 2, 3, 3]
    # one broker priority per lane
    assert len(LANE_PRIORITIES) == LANES == len(LANE_BOUNDS) + 1


def test_a_small_tenant_behind_a_bulk_tenant_gets_an_earlier_lane(tmp_path):
    dispatcher = RecordingDispatcher()
    services = services_with(tmp_path, dispatcher)
    for n in range(40):
        enqueue(services, upload("bulk", n))
    for n in range(3):
        enqueue(services, upload("small", n))

    bulk = [lane for _, _, lane in dispatcher.sent[:40]]
    small = [lane for _, _, lane in dispatcher.sent[40:]]
    assert bulk == [0] * 2 + [1] * 6 + [2] * 24 + [3] * 8
    assert small == [0, 0, 1]
    assert {stage for _, stage, _ in dispatcher.sent} == {Stage.STORE}


def test_the_reconciler_re_enqueues_in_the_tenants_current_lane(tmp_path):
    dispatcher = RecordingDispatcher()
    services = services_with(tmp_path, dispatcher)
    jobs = [enqueue(services, upload("bulk", n)) for n in range(12)]
    dispatcher.sent.clear()

    redriven = reconcile(services, older_than_seconds=0)

    assert sorted(job_id for job_id, _ in redriven) == sorted(job.job_id for job in jobs)
    assert {lane for _, _, lane in dispatcher.sent} == {lane_for(12)}


@pytest.mark.parametrize("tenant_jobs", [1, 40])
def test_with_fairness_off_every_job_shares_the_first_lane(tmp_path, tenant_jobs):
    dispatcher = RecordingDispatcher()
    services = services_with(tmp_path, dispatcher, worker={"fair_lanes": False})
    for n in range(tenant_jobs):
        enqueue(services, upload("bulk", n))
    assert {lane for _, _, lane in dispatcher.sent} == {0}
