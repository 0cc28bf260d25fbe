"""Celery settings as data, derived from the typed settings.

Reference: https://docs.celeryq.dev/en/stable/userguide/configuration.html
"""

from adapters.celery.topology import (
    CALLBACK_QUEUE,
    CALLBACK_TASK,
    LANE_PRIORITIES,
    MAINTENANCE_PRIORITY,
    MAINTENANCE_QUEUE,
    STAGE_QUEUES,
)
from pipeline.settings import process_settings

_settings = process_settings()
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
    # One list per priority step (kombu's default steps, spelled out: adapters/redis/queues.py and
    # the lanes in adapters/celery/topology.py rely on them).
    "priority_steps": list(LANE_PRIORITIES),
}
# The next stage of a chain and a retry keep the priority the message was delivered with.
task_inherit_parent_priority = True
result_backend_transport_options = {"visibility_timeout": _worker.visibility_timeout}

# JSON only: a worker refuses pickle (and every other content type).
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

task_acks_late = True
task_reject_on_worker_lost = True
# A running task keeps running when the broker connection drops: on Redis its ack after the
# reconnect removes the message from the unacked set, and if that fails the message comes
# back after the visibility timeout to a stage that is idempotent. Cancelling it instead
# (True) loses the task whenever the broker's last writes were lost with it (AOF fsyncs once
# a second), and its job waits for the reconciler.
worker_cancel_long_running_tasks_on_connection_loss = False
# A worker's publishes (the next stage of a chain, a retry) ride out a broker restart of
# publish_retry_seconds; producers pass a short policy of their own (adapters/celery/dispatcher.py).
task_publish_retry = True
task_publish_retry_policy = {
    "max_retries": _worker.publish_retry_seconds + 1,
    "interval_start": 0,
    "interval_step": 1,
    "interval_max": 1,
}
task_acks_on_failure_or_timeout = True
worker_prefetch_multiplier = 1
task_soft_time_limit = _worker.soft_time_limit
task_time_limit = _worker.time_limit
worker_max_memory_per_child = _worker.max_memory_per_child_kb
result_expires = 24 * 3600
result_extended = False

task_default_queue = MAINTENANCE_QUEUE
task_routes = {spec.task_name: {"queue": spec.queue} for spec in STAGE_QUEUES.values()}
task_routes[CALLBACK_TASK] = {"queue": CALLBACK_QUEUE}
task_create_missing_queues = True

# Events for Flower: every worker sends task events, and sent events are recorded too.
worker_send_task_events = True
task_send_sent_event = True
task_track_started = True

_maintenance = _settings.maintenance
_reconciler = _settings.reconciler()
beat_schedule = {
    "reconcile-stuck-jobs": {
        "task": "conversa.maintenance.reconcile",
        "schedule": _reconciler.every_seconds,
        # At the first lane's priority: ahead of every backlog; at most two runs wait.
        "options": {"queue": MAINTENANCE_QUEUE, "priority": MAINTENANCE_PRIORITY,
                    "expires": 2 * _reconciler.every_seconds},
    },
    "compact-vector-index": {
        "task": "conversa.maintenance.compact_index",
        "schedule": _maintenance.compact_every_seconds,
        "options": {"queue": MAINTENANCE_QUEUE, "expires": _maintenance.compact_every_seconds},
    },
}
if _maintenance.check_every_seconds:  # `conversa check` over every tenant, report only
    beat_schedule["check-every-tenant"] = {
        "task": "conversa.maintenance.check", "schedule": _maintenance.check_every_seconds,
        "options": {"queue": MAINTENANCE_QUEUE, "expires": _maintenance.check_every_seconds}}

worker_hijack_root_logger = False
