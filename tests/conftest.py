"""Fixtures shared by every test suite: throwaway servers and per-test database names."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

from tests.support.servers import mongo_server, valkey_server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway valkey-server for the whole session (nothing persisted)."""
    with valkey_server(tmp_path_factory.mktemp("valkey")) as url:
        yield url


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway secantusd for the whole session, storing in a temporary folder."""
    with mongo_server(tmp_path_factory.mktemp("secantusd")) as url:
        yield url


@pytest.fixture(scope="session")
def mongo_admin(mongo_url: str) -> Iterator[MongoClient[dict[str, object]]]:
    """A plain pymongo client of the session's server, for set-up and clean-up."""
    client: MongoClient[dict[str, object]] = MongoClient(
        mongo_url, serverSelectionTimeoutMS=30_000, tz_aware=True)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def mongo_database_name(mongo_admin: MongoClient[dict[str, object]]) -> Iterator[str]:
    """A database name no other test uses; the database is dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:20]}"
    yield name
    mongo_admin.drop_database(name)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server over HTTP on a free port, for the whole session."""
    from tests.support.moto_server import moto_s3_server

    with moto_s3_server() as url:
        yield url


@pytest.fixture
def env(redis_url: str, mongo_url: str, mongo_database_name: str,
        tmp_path: Path) -> dict[str, str]:
    """The environment of a test's workers: a flushed broker, its own database and data dir."""
    import redis

    from tests.support.workers import stack_env

    redis.Redis.from_url(redis_url).flushall()
    return stack_env(redis_url, mongo_url, mongo_database_name, tmp_path / "data")
