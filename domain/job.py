"""The ingestion job record (the seed's DataIngestion): where one upload is and why it failed."""

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from domain.status import JobStatus, Stage


def utcnow() -> datetime:
    return datetime.now(UTC)


class StageError(BaseModel):
    """Why a job failed: the stage, the error's type name and a message fit for users."""

    model_config = ConfigDict(frozen=True)

    stage: Stage
    type: str
    message: str


class IngestionJob(BaseModel):
    """One accepted upload. MongoDB holds it; only the pipeline changes it, by compare-and-set."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    tenant: str
    document_id: str
    source: str
    source_uri: str
    source_name: str
    content_type: str = "application/octet-stream"
    size: int | None = None
    sha256: str | None = None
    object_key: str | None = None
    status: JobStatus = JobStatus.QUEUED
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    stage_times: dict[str, datetime] = Field(default_factory=dict)
    attempts: dict[str, int] = Field(default_factory=dict)
    error: StageError | None = None
    keywords: list[str] = Field(default_factory=list)
    chunk_count: int | None = None
    chunks_key: str | None = None
    embeddings_key: str | None = None

    @property
    def failed_stage(self) -> Stage | None:
        return self.error.stage if self.error else None
