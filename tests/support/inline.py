"""A dispatcher that runs a job's stages in this process, for unit tests with fakes."""

from dataclasses import dataclass, field

from domain.errors import PermanentError, TransientError
from domain.status import STAGES, Stage
from pipeline.bootstrap import Services, bootstrap
from pipeline.redrive import fail_job
from pipeline.settings import Settings
from pipeline.stages import STAGE_FUNCTIONS


@dataclass
class InlineDispatcher:
    """Runs stages synchronously; a transient error is tried ``tries`` times, then fails."""

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
            for attempt in range(1, self.tries + 1):
                try:
                    STAGE_FUNCTIONS[current](self.services, job_id)
                    break
                except TransientError as exc:
                    if attempt == self.tries:
                        fail_job(self.services, job_id, current, exc)
                        return
                except PermanentError as exc:
                    fail_job(self.services, job_id, current, exc)
                    return


def memory_services(tmp_path, **overrides) -> Services:
    """Services on in-memory fakes, with an inline dispatcher wired back to them."""
    from adapters.memory.fakes import (
        FrequencyKeywords,
        HashEmbedder,
        MemoryDocumentRepository,
        MemoryJobRepository,
        MemoryObjectStore,
        MemoryVectorIndex,
    )

    dispatcher = InlineDispatcher()
    settings = Settings(data_dir=tmp_path / "data", **overrides)
    services = bootstrap(
        settings,
        objects=MemoryObjectStore(),
        jobs=MemoryJobRepository(),
        documents=MemoryDocumentRepository(),
        embedder=HashEmbedder(),
        keywords=FrequencyKeywords(),
        vectors=MemoryVectorIndex(),
        dispatcher=dispatcher,
    )
    dispatcher.services = services
    return services
