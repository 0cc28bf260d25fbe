"""The real app on real Valkey and the MongoDB-wire server, and users with API keys."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from fastapi.testclient import TestClient

from adapters.memory.users import MemoryNotifier
from api.app import create_app
from pipeline.accounts import AccountServices
from pipeline.bootstrap import Services, bootstrap_accounts
from tests.support.workers import producer, stack_env

#: Small, so the over-the-limit tests stay fast.
TEST_UPLOAD_LIMIT = 256 * 1024


@dataclass
class Api:
    client: TestClient
    services: Services
    accounts: AccountServices
    notifier: MemoryNotifier
    env: dict[str, str]

    def signup(self, email: str) -> tuple[str, str]:
        """Register and verify; returns (api key, tenant)."""
        assert self.client.post("/v1/users", json={"email": email}).status_code == 202
        answer = self.client.post("/v1/users/verify", json={
            "email": email, "code": self.notifier.last_code(email)})
        assert answer.status_code == 201, answer.text
        body = answer.json()
        return body["api_key"], body["tenant"]


def api_env(redis_url: str, mongo_url: str, database: str, tmp_path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = stack_env(redis_url, mongo_url, database, tmp_path / "data")
    env["CONVERSA_MAX_UPLOAD_BYTES"] = str(TEST_UPLOAD_LIMIT)
    return env


@pytest.fixture
def api(redis_url, mongo_url, mongo_database_name, tmp_path) -> Iterator[Api]:  # type: ignore[no-untyped-def]
    redis.Redis.from_url(redis_url).flushall()
    env = api_env(redis_url, mongo_url, mongo_database_name, tmp_path)
    services, _ = producer(env)
    notifier = MemoryNotifier()
    accounts = bootstrap_accounts(services.settings, notifier=notifier)
    app = create_app(services=services, accounts=accounts)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, services, accounts, notifier, env)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
