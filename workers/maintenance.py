"""Periodic tasks for Celery beat: re-enqueue stuck jobs, compact the vector index."""

from adapters.celery.broker_counts import jobs_in_flight
from adapters.celery.topology import MAINTENANCE_QUEUE
from domain.status import Stage
from pipeline.bootstrap import Services
from pipeline.check import check_tenants
from pipeline.maintenance import compact_index
from pipeline.redrive import reconcile
from workers import context, telemetry
from workers.app import app

RECONCILE_TASK = "conversa.maintenance.reconcile"
COMPACT_TASK = "conversa.maintenance.compact_index"
CHECK_TASK = "conversa.maintenance.check"


def reconcile_lost(services: Services, older_than_seconds: float) -> list[tuple[str, Stage]]:
    """Re-enqueue the stuck jobs that no message on the broker still carries."""
    in_flight = jobs_in_flight(services.settings.require_broker_url())
    return reconcile(services, older_than_seconds, in_flight)


@app.task(name=RECONCILE_TASK, queue=MAINTENANCE_QUEUE, ignore_result=True)
def reconcile_stuck_jobs() -> int:
    services = context.services()
    return len(reconcile_lost(services, services.settings.reconciler().stuck_after_seconds))


@app.task(name=COMPACT_TASK, queue=MAINTENANCE_QUEUE, ignore_result=True)
def compact_vector_index() -> int:
    return compact_index(context.services())


@app.task(name=CHECK_TASK, queue=MAINTENANCE_QUEUE, ignore_result=True)
def check_every_tenant() -> int:
    """`conversa check` over every tenant, report only (never repairs), for the metrics."""
    services = context.services()
    counts = check_tenants(services, jobs_in_flight(services.settings.require_broker_url()))
    telemetry.record_check(counts)
    return sum(counts.values())

