"""A dispatcher that runs a job's stages in this process, for unit tests with fakes."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.ports import StageDispatcher
from domain.errors import PermanentError, TransientError
from domain.status import STAGES, Stage
from pipeline.attempts import RetryStage, attempt_stage, chain_goes_on
from pipeline.bootstrap import Services, bootstrap
from pipeline.settings import Settings


@dataclass
class InlineDispatcher:
    """Runs stages synchronously through the Celery task's own retry rule and failure mapping
    (``pipeline.attempts``), without the countdowns: a transient error is tried ``tries``
    times in all, then the job fails; a permanent one fails it at once."""

    services: Services | None = None
    tries: int = 3
    dispatched: list[tuple[str, Stage]] = field(default_factory=list)
    paused: bool = False

    def dispatch(self, job_id: str, stage: Stage, lane: int = 0) -> None:
        self.dispatched.append((job_id, stage))
        if self.paused:
            return
        assert self.services is not None
        for current in STAGES[STAGES.index(stage):]:
            retries = 0
            while True:
                try:
                    job = attempt_stage(self.services, current, job_id, retries,
                                        max_retries=self.tries - 1)
                    break
                except RetryStage:
                    retries += 1
                except (TransientError, PermanentError):
                    return  # the job is failed at this stage, as the worker leaves it
            if not chain_goes_on(current, job):
                return


def memory_services(tmp_path: Path, *, adapters: Mapping[str, Any] | None = None,
                    dispatcher: StageDispatcher | None = None, **settings: Any) -> Services:
    """The tests' one wiring of the pipeline on in-memory fakes: settings with ``data_dir``
    under ``tmp_path`` (and ``settings`` as given), the fakes of every store and model, with
    ``adapters`` (by their ``bootstrap`` names) replacing any of them, and ``dispatcher``, an
    InlineDispatcher wired back to these services unless another is given."""
    from adapters.memory.fakes import (
        FrequencyKeywords,
        HashEmbedder,
        MemoryDocumentRepository,
        MemoryJobRepository,
        MemoryObjectStore,
        MemoryVectorIndex,
    )

    dispatcher = dispatcher or InlineDispatcher()
    services = bootstrap(
        Settings(data_dir=tmp_path / "data", **settings),
        **{"objects": MemoryObjectStore(),
           "jobs": MemoryJobRepository(),
           "documents": MemoryDocumentRepository(),
           "embedder": HashEmbedder(),
           "keywords": FrequencyKeywords(),
           "vectors": MemoryVectorIndex(),
           "dispatcher": dispatcher,
           **(adapters or {})},
    )
    if isinstance(dispatcher, InlineDispatcher):
        dispatcher.services = services
    return services
