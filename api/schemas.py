"""Request and response bodies of the HTTP API (the seed's entity schemas)."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from domain.documents import SearchHit
from domain.events import UploadEvent
from domain.filters import MetadataFilter, from_json
from domain.job import IngestionJob
from domain.users import ApiKey
from pipeline.accounts import IssuedKey


def event_max_length(name: str) -> int:
    """The most characters ``UploadEvent`` allows in a field: the one number every reader of
    an upload's fields (the multipart reader, the JSON body, the spec) checks against."""
    limits = [getattr(rule, "max_length", None)
              for rule in UploadEvent.model_fields[name].metadata]
    return next(limit for limit in limits if isinstance(limit, int))


#: Upload fields and their limits, from ``UploadEvent``.
SOURCE_MAX_CHARS = event_max_length("source")
SOURCE_NAME_MAX_CHARS = event_max_length("source_name")

MetadataInput = str | int | float | bool | list[str]
MetadataField = Annotated[str, Field(max_length=64)]
FilterField = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
Bound = float | str


class RangeIn(BaseModel):
    """A number (or an ISO date, compared as its Unix seconds) within the given bounds."""

    model_config = ConfigDict(extra="forbid")

    gte: Bound | None = None
    gt: Bound | None = None
    lte: Bound | None = None
    lt: Bound | None = None


FilterValue = str | int | float | bool | list[str | int | float] | RangeIn


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ObjectIngestionRequest(StrictModel):
    """Ingest bytes already put in the object store under ``<tenant>/incoming/``."""

    object_key: str = Field(min_length=1, max_length=1024)
    source_name: str | None = Field(default=None, min_length=1,
                                    max_length=SOURCE_NAME_MAX_CHARS)
    source: str | None = Field(default=None, min_length=1, max_length=SOURCE_MAX_CHARS)
    callback_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://",
                                     description="Called when the job ends (instead of the "
                                     "tenant's callback URL).")
    metadata: dict[MetadataField, MetadataInput] | None = Field(
        default=None, description="Custom metadata of the document's new version "
        "(see the README's Custom metadata).")


class StageErrorOut(BaseModel):
    stage: str
    type: str
    message: str


class JobOut(BaseModel):
    job_id: str
    document_id: str
    status: str
    source: str
    source_name: str
    content_type: str
    size: int | None
    chunk_count: int | None
    keywords: list[str]
    error: StageErrorOut | None
    attempts: dict[str, int]
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, MetadataInput] = {}
    usage: dict[str, int] = Field(default={}, description="What the job cost so far "
                                  "(see the README's Usage and cost).")

    @classmethod
    def of(cls, job: IngestionJob) -> "JobOut":
        return cls(
            job_id=job.job_id, document_id=job.document_id, status=job.status.value,
            source=job.source, source_name=job.source_name, content_type=job.content_type,
            size=job.size, chunk_count=job.chunk_count, keywords=job.keywords,
            error=StageErrorOut(stage=job.error.stage.value, type=job.error.type,
                                message=job.error.message) if job.error else None,
            attempts=job.attempts, created_at=job.created_at, updated_at=job.updated_at,
            metadata=job.metadata, usage=job.usage.counts())


class AcceptedOut(BaseModel):
    job_id: str
    document_id: str
    status: str


class JobListOut(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None


class SearchRequest(StrictModel):
    query: str = Field(min_length=1, max_length=4000)
    top_k: int = Field(default=5, ge=1, le=100)
    filters: dict[FilterField, FilterValue] | None = Field(
        default=None, max_length=16,
        description="Each field equals the value, is one of the values of a list, or is "
        "within a range {gte, gt, lte, lt}; on custom metadata an ISO date is its Unix "
        "seconds.")

    def metadata_filter(self) -> MetadataFilter | None:
        """The filters in the domain's form (``domain.filters.from_json``)."""
        if not self.filters:
            return None
        return from_json({name: value.model_dump(exclude_none=True)
                          if isinstance(value, RangeIn) else value
                          for name, value in self.filters.items()})


class SearchOut(BaseModel):
    hits: list[SearchHit]


class DeletedOut(BaseModel):
    document_id: str
    deleted: bool


class RegisterRequest(StrictModel):
    email: str = Field(min_length=3, max_length=320)


class RegisteredOut(BaseModel):
    email: str
    message: str


class VerifyRequest(StrictModel):
    email: str = Field(min_length=3, max_length=320)
    code: str = Field(min_length=1, max_length=64)


class KeyOut(BaseModel):
    key_id: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    active: bool

    @classmethod
    def of(cls, key: ApiKey) -> "KeyOut":
        return cls(key_id=key.key_id, prefix=key.prefix, created_at=key.created_at,
                   revoked_at=key.revoked_at, active=key.active)


class KeyListOut(BaseModel):
    keys: list[KeyOut]


class IssuedKeyOut(BaseModel):
    api_key: str = Field(description="The key itself: shown this once, stored only as a hash.")
    key_id: str
    prefix: str
    user_id: str
    tenant: str

    @classmethod
    def of(cls, issued: IssuedKey) -> "IssuedKeyOut":
        return cls(api_key=issued.api_key, key_id=issued.record.key_id,
                   prefix=issued.record.prefix, user_id=issued.user.user_id,
                   tenant=issued.user.tenant)


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str
    checks: dict[str, str]
