"""The ingestion job's status machine: forward-only through the stages, or to failed."""

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    STORED = "stored"
    RECORDED = "recorded"
    EXTRACTED = "extracted"
    EMBEDDED = "embedded"
    INDEXED = "indexed"
    DONE = "done"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED)


class Stage(StrEnum):
    """The five pipeline stages, in chain order."""

    STORE = "store"
    RECORD = "record"
    EXTRACT = "extract"
    EMBED = "embed"
    INDEX = "index"


FORWARD_ORDER: tuple[JobStatus, ...] = (
    JobStatus.QUEUED,
    JobStatus.STORED,
    JobStatus.RECORDED,
    JobStatus.EXTRACTED,
    JobStatus.EMBEDDED,
    JobStatus.INDEXED,
    JobStatus.DONE,
)

STAGES: tuple[Stage, ...] = tuple(Stage)

#: The status a job must have for a stage to run, and the status the stage leaves it in.
#: The index stage ends the job: it moves ``embedded -> indexed -> done``.
STAGE_INPUT: dict[Stage, JobStatus] = {
    Stage.STORE: JobStatus.QUEUED,
    Stage.RECORD: JobStatus.STORED,
    Stage.EXTRACT: JobStatus.RECORDED,
    Stage.EMBED: JobStatus.EXTRACTED,
    Stage.INDEX: JobStatus.EMBEDDED,
}
STAGE_OUTPUT: dict[Stage, JobStatus] = {
    Stage.STORE: JobStatus.STORED,
    Stage.RECORD: JobStatus.RECORDED,
    Stage.EXTRACT: JobStatus.EXTRACTED,
    Stage.EMBED: JobStatus.EMBEDDED,
    Stage.INDEX: JobStatus.INDEXED,
}


def rank(status: JobStatus) -> int:
    """Position of a non-failed status in the forward order."""
    return FORWARD_ORDER.index(status)


def can_transition(current: JobStatus, new: JobStatus) -> bool:
    """Whether ``current -> new`` is a legal move: one step forward, or to failed.

    Terminal statuses never move; re-driving a failed job is a separate, explicit rule
    (:func:`redrive_status`).
    """
    if current.is_terminal:
        return False
    if new is JobStatus.FAILED:
        return True
    return rank(new) == rank(current) + 1


def next_stage(status: JobStatus) -> Stage | None:
    """The stage a job in ``status`` needs next; None when nothing is left to run."""
    for stage, needed in STAGE_INPUT.items():
        if needed is status:
            return stage
    if status is JobStatus.INDEXED:
        return Stage.INDEX  # the index stage finishes the job (indexed -> done)
    return None


def is_redrive_target(status: JobStatus) -> bool:
    """Whether a failed job may be re-driven to ``status``: only to a stage's input."""
    return status in STAGE_INPUT.values()


def redrive_status(failed_stage: Stage) -> JobStatus:
    """The status a failed job returns to when it is re-driven from ``failed_stage``."""
    return STAGE_INPUT[failed_stage]
