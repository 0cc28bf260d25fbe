"""The StageDispatcher on Celery: a chain of the remaining stage tasks, job id only."""

from celery import Celery, chain

from adapters.celery.topology import STAGE_QUEUES
from domain.status import STAGES, Stage


class CeleryDispatcher:
    def __init__(self, app: Celery) -> None:
        self._app = app

    def dispatch(self, job_id: str, stage: Stage) -> None:
        remaining = STAGES[STAGES.index(stage):]
        signatures = [
            self._app.signature(STAGE_QUEUES[s].task_name, args=(job_id,), immutable=True,
                                queue=STAGE_QUEUES[s].queue)
            for s in remaining
        ]
        chain(*signatures).apply_async()
