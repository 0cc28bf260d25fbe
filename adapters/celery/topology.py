"""Queue names, task names and per-stage limits, declared once for workers, routes and ops."""

from dataclasses import dataclass
from typing import Literal

from domain.status import STAGES, Stage

Bound = Literal["io", "cpu", "api"]


@dataclass(frozen=True)
class StageQueue:
    stage: Stage
    queue: str
    task_name: str
    bound: Bound
    #: What bounds the stage locally; with OpenAI or Pinecone, embed and index are API-bound.
    description: str


STAGE_QUEUES: dict[Stage, StageQueue] = {
    Stage.STORE: StageQueue(Stage.STORE, "conversa.store", "conversa.stage.store", "io",
                            "reads the upload and writes it to the object store"),
    Stage.RECORD: StageQueue(Stage.RECORD, "conversa.record", "conversa.stage.record", "io",
                             "one MongoDB upsert"),
    Stage.EXTRACT: StageQueue(Stage.EXTRACT, "conversa.extract", "conversa.stage.extract", "cpu",
                              "parses, chunks and extracts keywords"),
    Stage.EMBED: StageQueue(Stage.EMBED, "conversa.embed", "conversa.stage.embed", "cpu",
                            "runs the embedding model (API-bound with OpenAI)"),
    Stage.INDEX: StageQueue(Stage.INDEX, "conversa.index", "conversa.stage.index", "io",
                            "upserts vectors (API-bound with Pinecone)"),
}
MAINTENANCE_QUEUE = "conversa.maintenance"
#: Callback deliveries: their own queue, so a slow or failing receiver never holds up a stage.
CALLBACK_QUEUE = "conversa.callbacks"
CALLBACK_TASK = "conversa.callback.deliver"

#: Message priorities on the Redis transport: kombu keeps one list per step (0, 3, 6, 9) and
#: a worker takes from the step-0 lists of all its queues first. A stage message carries the
#: priority of its job's lane (pipeline/fairness.py); the first lane is the step of messages
#: sent without a priority, and the reconciler runs at that step too.
#: Reference: https://docs.celeryq.dev/en/stable/userguide/routing.html#redis-message-priorities
MAINTENANCE_PRIORITY = 0
LANE_PRIORITIES: tuple[int, ...] = (0, 3, 6, 9)
ALL_QUEUES: tuple[str, ...] = (*(STAGE_QUEUES[s].queue for s in STAGES), MAINTENANCE_QUEUE,
                               CALLBACK_QUEUE)


def queue_of(stage: Stage) -> str:
    return STAGE_QUEUES[stage].queue


def resolve_queues(spec: str | None) -> list[str]:
    """``store,embed`` or full queue names -> queue names; None or ``all`` -> every queue."""
    if not spec or spec == "all":
        return list(ALL_QUEUES)
    names = []
    for raw in spec.split(","):
        name = raw.strip()
        if name in Stage.__members__.values() or name in {s.value for s in Stage}:
            names.append(STAGE_QUEUES[Stage(name)].queue)
        elif name in ALL_QUEUES:
            names.append(name)
        elif name == "maintenance":
            names.append(MAINTENANCE_QUEUE)
        elif name == "callbacks":
            names.append(CALLBACK_QUEUE)
        else:
            raise ValueError(
                f"unknown queue {name!r}; choose from {', '.join(s.value for s in Stage)}, "
                "maintenance, callbacks")
    return names
