"""`conversa metrics` scraped during and after a real run on a real worker, parsed with
prometheus_client's own parser."""

import subprocess
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.celery.topology import ALL_QUEUES, STAGE_QUEUES
from domain.status import JobStatus, Stage
from localstack.servers import free_port, stop_process, wait_for_port
from pipeline.producer import enqueue, file_event
from tests.support.workers import celery_worker, producer, wait_for, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROSE = ("Lighthouse keepers trimmed the wicks, polished the lenses and logged the weather "
         "every night, climbing the spiral stairs long before dawn. ") * 30


@pytest.fixture
def exporter(env, tmp_path):
    port = free_port()
    log = tmp_path / "metrics.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cli", "metrics", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, 30, log_path=log)
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        stop_process(proc)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        text = answer.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_during_and_after_a_run(env, exporter, tmp_path):
    services, app = producer(env)
    good = []
    for i in range(3):
        path = tmp_path / f"keepers-{i}.txt"
        path.write_text(f"Log {i}. " + PROSE)
        good.append(enqueue(services, file_event(path, "default", 10**6)))
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"GIF89a" + bytes(range(256)) * 20)
    bad = enqueue(services, file_event(binary, "acme", 10**6))
    # An embed message for a job not yet extracted: retried twice, then the job fails.
    path = tmp_path / "early.txt"
    path.write_text(PROSE)
    early = services.jobs.create(_job_from(file_event(path, "default", 10**6), "early0001"))
    app.send_task(STAGE_QUEUES[Stage.EMBED].task_name, args=(early.job_id,),
                  queue=STAGE_QUEUES[Stage.EMBED].queue)

    during = scrape(exporter)  # mid-run: every job accepted, none started yet
    for queue in ALL_QUEUES:
        assert (("conversa_queue_messages", (("queue", queue), ("stage", _stage(queue)),
                                             ("state", "waiting")))) in during
    assert value(during, "conversa_queue_messages", queue="conversa.store", stage="store",
                 state="waiting") == 4
    assert value(during, "conversa_queue_messages", queue="conversa.embed", stage="embed",
                 state="waiting") == 1
    assert value(during, "conversa_jobs", status="queued") == 5
    assert value(during, "conversa_oldest_active_job_age_seconds") > 0
    assert value(during, "conversa_source_up", source="broker") == 1
    assert value(during, "conversa_source_up", source="mongodb") == 1

    with celery_worker(env, tmp_path / "worker.log", concurrency=2):
        ids = [job.job_id for job in (*good, bad, early)]
        finished = {job.job_id: job for job in wait_terminal(services, ids, timeout=180)}
        # The failure counters are written just after the job is marked failed.
        wait_for(lambda: value(scrape(exporter), "conversa_stage_failures_total",
                               stage="embed", error_type="TransientError") == 1,
                 30, "the embed failure to be counted")
    with urllib.request.urlopen(exporter, timeout=30) as answer:
        (tmp_path / "metrics.txt").write_bytes(answer.read())  # a sample, kept for reading
    after = scrape(exporter)

    assert [finished[j.job_id].status for j in good] == [JobStatus.DONE] * 3
    assert value(after, "conversa_jobs", status="done") == 3
    assert value(after, "conversa_jobs", status="failed") == 2
    assert value(after, "conversa_jobs", status="queued") == 0
    assert value(after, "conversa_oldest_active_job_age_seconds") == 0
    for stage in ("store", "record", "index"):
        assert value(after, "conversa_stage_duration_seconds_count", stage=stage) == (
            4 if stage in ("store", "record") else 3)
    assert value(after, "conversa_stage_duration_seconds_count", stage="extract") == 3
    assert value(after, "conversa_stage_duration_seconds_bucket", stage="embed",
                 le="+Inf") == 3
    assert value(after, "conversa_stage_duration_seconds_sum", stage="embed") > 0
    assert value(after, "conversa_stage_failures_total", stage="extract",
                 error_type="PermanentError") == 1
    assert value(after, "conversa_stage_retries_total", stage="embed",
                 error_type="TransientError") == 2
    total_chunks = sum(finished[j.job_id].chunk_count for j in good)
    assert value(after, "conversa_embedder_requests_total") >= 3
    assert value(after, "conversa_embedder_tokens_total") > total_chunks
    for queue in ALL_QUEUES:
        for state in ("waiting", "unacked"):
            assert value(after, "conversa_queue_messages", queue=queue, stage=_stage(queue),
                         state=state) == 0


def _stage(queue: str) -> str:
    return next((spec.stage.value for spec in STAGE_QUEUES.values() if spec.queue == queue), "")


def _job_from(event, job_id: str):
    from domain.documents import document_id
    from domain.job import IngestionJob

    return IngestionJob(job_id=job_id, tenant=event.tenant,
                        document_id=document_id(event.tenant, event.source),
                        source=event.source, source_uri=event.source_uri,
                        source_name=event.source_name)
