"""The StageDispatcher on Celery: a chain of the remaining stage tasks, job id only, at the
priority of the job's lane."""

from functools import cache

from celery import Celery, chain

from adapters.celery.topology import CALLBACK_QUEUE, CALLBACK_TASK, LANE_PRIORITIES, STAGE_QUEUES
from domain.status import STAGES, Stage

#: A producer fails fast (a few retries within about a second, Celery's default) when the
#: broker is away: its job stays queued and a re-enqueue or the reconciler sends it. Workers
#: retry longer (``task_publish_retry_policy`` in celeryconfig).
PRODUCER_RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2,
                         "interval_max": 0.2}


@cache
def producer_app() -> Celery:
    """This process's Celery app for sending only: the workers' configuration (celeryconfig:
    broker, serializer, priority steps), no tasks. Tasks are sent by name, so the API and the
    CLI need not import the worker's app; Celery resets its connection pools after a fork."""
    app = Celery("conversa", set_as_current=False)
    app.config_from_object("celeryconfig")
    return app


class CeleryDispatcher:
    def __init__(self, app: Celery) -> None:
        self._app = app

    def dispatch(self, job_id: str, stage: Stage, lane: int = 0) -> None:
        remaining = STAGES[STAGES.index(stage):]
        # Every stage's message carries the lane's priority; a retry keeps the priority it
        # was delivered with (and task_inherit_parent_priority covers the chain's next step).
        priority = LANE_PRIORITIES[max(0, min(lane, len(LANE_PRIORITIES) - 1))]
        signatures = [
            self._app.signature(STAGE_QUEUES[s].task_name, args=(job_id,), immutable=True,
                                queue=STAGE_QUEUES[s].queue, priority=priority)
            for s in remaining
        ]
        chain(*signatures).apply_async(retry_policy=PRODUCER_RETRY_POLICY)

    def dispatch_callback(self, job_id: str) -> None:
        self._app.send_task(CALLBACK_TASK, args=(job_id,), queue=CALLBACK_QUEUE,
                            retry_policy=PRODUCER_RETRY_POLICY)
