"""Periodic tasks for Celery beat: re-enqueue stuck jobs, compact the vector index, check
every tenant."""

from adapters.celery.topology import MAINTENANCE_QUEUE
from pipeline.check import check_tenants
from pipeline.maintenance import compact_index
from pipeline.redrive import reconcile_lost
from workers import context, telemetry
from workers.app import app

__all__ = ["check_every_tenant", "compact_vector_index", "reconcile_lost",
           "reconcile_stuck_jobs"]

RECONCILE_TASK = "conversa.maintenance.reconcile"
COMPACT_TASK = "conversa.maintenance.compact_index"
CHECK_TASK = "conversa.maintenance.check"


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
    counts = check_tenants(services, services.in_flight.jobs_in_flight())
    telemetry.record_check(counts)
    return sum(counts.values())
