"""The version model: what a document serves, which jobs may still change that, and the rules
by which a job's version becomes the served one. Pure functions on records; no I/O.

- A document's **served version** (``Document.served``) is the content search answers from:
  bytes, chunks, embeddings and the vectors of one ``vector_version``. Only the job that makes
  its version current writes it, in one compare-and-set of the whole record.
- A job that brings a version **claims** the document first (``Document.claims``), before it
  writes or relies on any stored object; the claim is what protects its content from cleanup.
- Versions are ordered by their job's creation (``order``): the served version only moves
  forward, so a job older than the served version, or created before the document was last
  deleted, is **obsolete** and can never become current; it finishes without changing the
  document and removes what it wrote.
- Content (one sha256 of one tenant) is **in use** while a document serves it or a claim that
  still **holds** brings it: the claim's job is not terminal, or it failed but could still be
  retried into the served version (it is not obsolete). Nothing else keeps content alive.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from domain.metadata import MetadataValue
from domain.status import JobStatus


def _ms(value: datetime) -> datetime:
    """Whole milliseconds: what every repository keeps, so comparisons agree everywhere."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


Millis = Annotated[datetime, AfterValidator(_ms)]


class Claim(BaseModel):
    """A job on its way to make its content a document's served version."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    sha256: str
    created_at: Millis


class Version(BaseModel):
    """One complete version of a document: everything search needs to serve it."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    created_at: Millis
    sha256: str
    object_key: str
    size: int
    source_name: str
    content_type: str
    chunks_key: str
    embeddings_key: str
    vector_version: str
    chunk_count: int
    keywords: list[str] = Field(default_factory=list)
    #: Custom metadata (``domain.metadata``), also on every vector of the version.
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)


class Leftover(BaseModel):
    """Content a record stopped using (a replaced or deleted served version, a claim given
    up), kept on the record until a cleanup has checked whether anything else uses it: so a
    cleanup cut short is finished by the next one, never forgotten."""

    model_config = ConfigDict(frozen=True)

    sha256: str
    keys: list[str] = Field(default_factory=list)


def order(created_at: datetime, job_id: str) -> tuple[datetime, str]:
    """The upload order of a job's version: its creation (in ms), ties broken by job id."""
    return _ms(created_at), job_id


class VersionedRecord(BaseModel):
    """The fields of a document record the version rules read and write."""

    model_config = ConfigDict(frozen=True)

    served: Version | None = None
    claims: list[Claim] = Field(default_factory=list)
    leftovers: list[Leftover] = Field(default_factory=list)
    deleted: bool = False
    deleted_at: datetime | None = None
    revision: int = 0


def is_obsolete(record: VersionedRecord, job_id: str, created_at: datetime) -> bool:
    """Whether a job created at ``created_at`` can no longer become the record's served version:
    a newer version is served, or the document was deleted after the job was created. Once
    true, it stays true (the served version and the deletion time only move forward)."""
    if record.served is not None and record.served.job_id == job_id:
        return False
    if record.deleted_at is not None and _ms(record.deleted_at) >= _ms(created_at):
        return True
    return record.served is not None and (
        order(record.served.created_at, record.served.job_id) > order(created_at, job_id))


def holds(record: VersionedRecord, claim: Claim, status: JobStatus | None) -> bool:
    """Whether ``claim`` (its job now in ``status``, None if the job is gone) keeps its
    content in use: the job is not terminal, or it failed and is not obsolete."""
    if status is None or status is JobStatus.DONE:
        return False
    if status is JobStatus.FAILED:
        return not is_obsolete(record, claim.job_id, claim.created_at)
    return True


def claim_of(record: VersionedRecord, job_id: str) -> Claim | None:
    return next((claim for claim in record.claims if claim.job_id == job_id), None)


def without_claims(claims: Iterable[Claim], job_ids: Iterable[str]) -> list[Claim]:
    gone = set(job_ids)
    return [claim for claim in claims if claim.job_id not in gone]


def leftover_of(version: Version) -> Leftover:
    return Leftover(sha256=version.sha256, keys=[version.chunks_key, version.embeddings_key])
