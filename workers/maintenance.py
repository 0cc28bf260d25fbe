"""Periodic tasks for Celery beat: re-enqueue stuck jobs, compact the vector index."""

from pipeline.maintenance import compact_index
from pipeline.redrive import reconcile
from workers import context
from workers.app import app
from workers.topology import MAINTENANCE_QUEUE

RECONCILE_TASK = "conversa.maintenance.reconcile"
COMPACT_TASK = "conversa.maintenance.compact_index"


@app.task(name=RECONCILE_TASK, queue=MAINTENANCE_QUEUE, ignore_result=True)
def reconcile_stuck_jobs() -> int:
    services = context.services()
    return len(reconcile(services, services.settings.maintenance.stuck_after_seconds))


@app.task(name=COMPACT_TASK, queue=MAINTENANCE_QUEUE, ignore_result=True)
def compact_vector_index() -> int:
    return compact_index(context.services())
