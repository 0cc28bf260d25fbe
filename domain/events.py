"""Messages put on the broker: small frozen models carrying ids and references only."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.documents import sanitize_filename
from domain.errors import PermanentError
from domain.metadata import MetadataValue, normalize

#: A broker message is ids and references; anything larger is a bug (claim check).
MAX_MESSAGE_BYTES = 4096


class UploadEvent(BaseModel):
    """A producer's request to ingest one file.

    ``source_uri`` points at the bytes (``file:///abs/path`` readable by the workers, or
    ``object:<key>`` in the object store); the bytes themselves never travel on the broker.
    ``source`` is the document's identity within the tenant (a path, URL or id).
    ``source_name`` is sanitized on the way in (``domain.documents.sanitize_filename``).
    ``source_uri`` may also be ``s3://bucket/key`` or an ``http(s)://`` URL, read by the
    store stage (``pipeline.sources``).
    ``sha256``, when the producer hashed the bytes, lets an unchanged upload be recognised
    before anything is queued; the store stage hashes again and trusts only its own hash.
    """

    model_config = ConfigDict(frozen=True)

    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    source: str = Field(min_length=1, max_length=1024)
    source_uri: str = Field(min_length=1, max_length=2048)
    source_name: str = Field(min_length=1, max_length=255)
    content_type: str = "application/octet-stream"
    size: int | None = Field(default=None, ge=0)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    #: What the source says its version is (a bucket object's entity tag, a file's size and
    #: mtime): ``conversa sync`` compares it with the served version's to skip what is unchanged.
    source_version: str | None = Field(default=None, max_length=256)
    #: Called when the job ends, instead of the tenant's callback URL (``domain.callbacks``).
    callback_url: str | None = Field(default=None, max_length=2048)
    #: Custom metadata of the version this upload brings (``domain.metadata``).
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)

    @field_validator("source_name", mode="before")
    @classmethod
    def _safe_name(cls, value: object) -> object:
        """The name is metadata only: any path, NUL or excess length is stripped, not refused."""
        return sanitize_filename(value) if isinstance(value, str) and value else value

    @field_validator("metadata", mode="before")
    @classmethod
    def _valid_metadata(cls, value: object) -> object:
        """Names, types and sizes checked, dates made numbers (InvalidMetadataError)."""
        return normalize(value) if isinstance(value, dict) or value is None else value


def upload_event(**fields: Any) -> UploadEvent:
    """``UploadEvent(**fields)``, the one way every producer (CLI, API, Python API) builds an
    upload event: a field past its limits is refused as a PermanentError naming the field (a
    client's mistake, never a server error)."""
    try:
        return UploadEvent(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()[:5])
        raise PermanentError(f"the upload's fields are not valid: {problems}") from None


class StageMessage(BaseModel):
    """What a stage task receives: the job id, nothing else."""

    model_config = ConfigDict(frozen=True)

    job_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
