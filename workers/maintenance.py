"""Periodic tasks for Celery beat: re-enqueue stuck jobs, compact the vector index."""

from adapters.celery.topology import MAINTENANCE_QUEUE
from pipeline.maintenance import compact_index
from pipeline.redrive import reconcile_lost
from workers import context
from workers.app import app

__all__ = ["compact_vector_index", "reconcile_lost", "reconcile_stuck_jobs"]

RECONCILE_TASK = "conversa.maintenance.reconcile"
COMPACT_TASK = "conversa.maintenance.compact_index"


@app.task(name=RECONCILE_TASK, queue=MAINTENANCE_QUEUE, ignore_result=True)
def reconcile_stuck_jobs() -> int:
    services = context.services()
    return len(reconcile_lost(services, services.settings.reconciler().stuck_after_seconds))


@app.task(name=COMPACT_TASK, queue=MAINTENANCE_QUEUE, ignore_result=True)
def compact_vector_index() -> int:
    return compact_index(context.services())
