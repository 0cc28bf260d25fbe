"""Celery settings as data, derived from the typed settings.

Reference: https://docs.celeryq.dev/en/stable/userguide/configuration.html
"""

from adapters.celery.topology import MAINTENANCE_QUEUE, STAGE_QUEUES
from pipeline.settings import load_settings

_settings = load_settings()
_worker = _settings.worker

broker_url = _settings.require_broker_url()
result_backend = _settings.require_result_backend()
broker_connection_retry_on_startup = True
broker_transport_options = {
    # Longer than any task plus any retry countdown, or a running task is handed out twice.
    "visibility_timeout": _worker.visibility_timeout,
    # Look for messages of dead workers every interval, not every interval x 10.
    "unacked_restore_interval": _worker.unacked_restore_interval,
    "unacked_restore_throttle": 1,
}
result_backend_transport_options = {"visibility_timeout": _worker.visibility_timeout}

# JSON only: a worker refuses pickle (and every other content type).
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

task_acks_late = True
task_reject_on_worker_lost = True
task_acks_on_failure_or_timeout = True
worker_prefetch_multiplier = 1
task_soft_time_limit = _worker.soft_time_limit
task_time_limit = _worker.time_limit
worker_max_memory_per_child = _worker.max_memory_per_child_kb
result_expires = 24 * 3600
result_extended = False

task_default_queue = MAINTENANCE_QUEUE
task_routes = {spec.task_name: {"queue": spec.queue} for spec in STAGE_QUEUES.values()}
task_create_missing_queues = True

# Events for Flower: every worker sends task events, and sent events are recorded too.
worker_send_task_events = True
task_send_sent_event = True
task_track_started = True

_maintenance = _settings.maintenance
beat_schedule = {
    "reconcile-stuck-jobs": {
        "task": "conversa.maintenance.reconcile",
        "schedule": _maintenance.reconcile_every_seconds,
        "options": {"queue": MAINTENANCE_QUEUE, "expires": _maintenance.reconcile_every_seconds},
    },
    "compact-vector-index": {
        "task": "conversa.maintenance.compact_index",
        "schedule": _maintenance.compact_every_seconds,
        "options": {"queue": MAINTENANCE_QUEUE, "expires": _maintenance.compact_every_seconds},
    },
}

worker_hijack_root_logger = False
worker_cancel_long_running_tasks_on_connection_loss = True
