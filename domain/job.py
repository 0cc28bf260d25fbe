"""The ingestion job record (the seed's DataIngestion): where one upload is and why it failed."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from domain.errors import PermanentError
from domain.metadata import MetadataValue
from domain.status import JobStatus, Stage
from domain.usage import Usage


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
    source_version: str | None = None
    callback_url: str | None = None
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
    #: Custom metadata of the version this job brings (validated on the UploadEvent).
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    #: What the job's stages cost, added by each stage's compare-and-set (``pipeline.usage``).
    usage: Usage = Field(default_factory=Usage)

    @property
    def failed_stage(self) -> Stage | None:
        return self.error.stage if self.error else None


#: Fields only the repository sets on a transition: identity, status and its clocks.
RESERVED_FIELDS = frozenset({"job_id", "tenant", "status", "created_at", "updated_at",
                             "stage_times"})
_field_adapters: dict[str, TypeAdapter[Any]] = {}


def check_transition_fields(fields: Mapping[str, object]) -> dict[str, Any]:
    """The fields a stage sets on a transition, validated against the job model.

    PermanentError for a reserved field, a field the job does not have, or a wrong value.
    """
    checked: dict[str, Any] = {}
    for name, value in fields.items():
        if name in RESERVED_FIELDS:
            raise PermanentError(f"transition cannot set {name!r}: the repository sets it")
        info = IngestionJob.model_fields.get(name)
        if info is None or info.annotation is None:
            raise PermanentError(f"a job has no field {name!r}")
        adapter = _field_adapters.get(name)
        if adapter is None:
            adapter = _field_adapters[name] = TypeAdapter(info.annotation)
        try:
            checked[name] = adapter.validate_python(value)
        except ValidationError as exc:
            raise PermanentError(f"bad value for job field {name!r}: {exc}") from None
    return checked
