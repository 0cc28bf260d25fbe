"""Builds each JobRepository / DocumentRepository adapter for the contract tests."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from adapters.memory.fakes import MemoryDocumentRepository, MemoryJobRepository
from adapters.mongodb.repositories import MongoDocumentRepository, MongoJobRepository
from adapters.ports import DocumentRepository, JobRepository

#: The adapters every repository contract test runs against.
KINDS = ("memory", "mongo")
#: Short enough that a test of a dead server is quick, long enough for a slow machine.
TEST_TIMEOUT_MS = 10_000


def job_repository(kind: str, request: pytest.FixtureRequest) -> Iterator[JobRepository]:
    if kind == "memory":
        yield MemoryJobRepository()
        return
    repo = MongoJobRepository(request.getfixturevalue("mongo_url"),
                              request.getfixturevalue("mongo_database_name"), TEST_TIMEOUT_MS)
    try:
        yield repo
    finally:
        repo.close()


def document_repository(kind: str, request: pytest.FixtureRequest
                        ) -> Iterator[DocumentRepository]:
    if kind == "memory":
        yield MemoryDocumentRepository()
        return
    repo = MongoDocumentRepository(request.getfixturevalue("mongo_url"),
                                   request.getfixturevalue("mongo_database_name"),
                                   TEST_TIMEOUT_MS)
    try:
        yield repo
    finally:
        repo.close()


def now_ms() -> datetime:
    """The current UTC time at millisecond precision, which every adapter keeps exactly."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
