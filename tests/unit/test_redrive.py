"""Re-driving failed jobs in bulk and reconciling around jobs still in flight, on fakes."""

from pathlib import Path

from domain.status import JobStatus, Stage
from pipeline.producer import enqueue, file_event
from pipeline.redrive import reconcile, retry_failed
from tests.support.inline import memory_services

TEXT = "Knead the dough, let it rise overnight and bake it in a hot oven until golden. " * 20


def failed_at_store(services, tmp_path: Path, name: str, tenant: str):
    path = tmp_path / name
    path.write_text(TEXT)
    event = file_event(path, tenant, 10**6)
    path.unlink()
    job = enqueue(services, event)
    assert services.jobs.get(job.job_id).status is JobStatus.FAILED
    return job, path


def test_retry_failed_filters_by_stage_and_tenant(tmp_path):
    services = memory_services(tmp_path)
    acme, acme_path = failed_at_store(services, tmp_path, "a.txt", "acme")
    zeta, zeta_path = failed_at_store(services, tmp_path, "z.txt", "zeta")
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20)
    image = enqueue(services, file_event(binary, "acme", 10**6))
    assert services.jobs.get(image.job_id).error.stage is Stage.EXTRACT
    acme_path.write_text(TEXT)
    zeta_path.write_text(TEXT)

    assert retry_failed(services, stage=Stage.EMBED) == []
    retried = retry_failed(services, stage=Stage.STORE, tenant="acme")

    assert [job.job_id for job in retried] == [acme.job_id]
    assert services.jobs.get(acme.job_id).status is JobStatus.DONE
    assert services.jobs.get(zeta.job_id).status is JobStatus.FAILED
    assert services.jobs.get(image.job_id).status is JobStatus.FAILED

    retried = retry_failed(services)  # every failed job, whatever its stage or tenant
    assert sorted(job.job_id for job in retried) == sorted([zeta.job_id, image.job_id])
    assert services.jobs.get(zeta.job_id).status is JobStatus.DONE
    again = services.jobs.get(image.job_id)
    assert again.status is JobStatus.FAILED
    assert again.error.stage is Stage.EXTRACT


def test_reconcile_leaves_jobs_with_a_message_in_flight_alone(tmp_path):
    services = memory_services(tmp_path)
    services.dispatcher.paused = True
    jobs = []
    for name in ("lost.txt", "waiting.txt"):
        path = tmp_path / name
        path.write_text(TEXT)
        jobs.append(enqueue(services, file_event(path, "default", 10**6)))
    lost, waiting = jobs
    services.dispatcher.paused = False

    redriven = reconcile(services, older_than_seconds=0, in_flight={waiting.job_id})

    assert redriven == [(lost.job_id, Stage.STORE)]
    assert services.jobs.get(lost.job_id).status is JobStatus.DONE
    assert services.jobs.get(waiting.job_id).status is JobStatus.QUEUED
