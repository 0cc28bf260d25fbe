"""Registration and verification under attack: per-email and per-address limits (429 with
Retry-After) that hold across API processes, a guess cap per email that a fresh registration
does not reset, and a pending code that nobody else's request can cancel. Real app, Valkey and
the MongoDB-wire server; a second app instance stands for a second uvicorn worker."""

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from pymongo import MongoClient

from adapters.mongodb.users import USERS_COLLECTION
from api.app import create_app
from localstack.servers import free_port, stop_process, wait_for_port
from pipeline.bootstrap import bootstrap_accounts
from tests.api.conftest import Api, api_env, bearer
from tests.api.test_endpoints import assert_error

pytestmark = pytest.mark.integration

#: More requests than any limit allows: a limit that never answers 429 within this fails.
FLOOD = 60


def register(client: TestClient, email: str):  # type: ignore[no-untyped-def]
    return client.post("/v1/users", json={"email": email})


def verify(client: TestClient, email: str, code: str):  # type: ignore[no-untyped-def]
    return client.post("/v1/users/verify", json={"email": email, "code": code})


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def until_refused(send, attempts: int = FLOOD) -> tuple[int, object]:  # type: ignore[no-untyped-def]
    """How many of ``send(i)`` passed before the first 429, and that 429."""
    for i in range(attempts):
        answer = send(i)
        if answer.status_code == 429:
            return i, answer
    raise AssertionError(f"{attempts} requests and never a 429")


def assert_limited(answer) -> int:  # type: ignore[no-untyped-def]
    error = assert_error(answer, 429, "too_many_requests")
    assert error["message"]
    retry_after = int(answer.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


def client_at(api: Api, address: str) -> TestClient:
    """The same app, called from another address."""
    return TestClient(api.client.app, client=(address, 50000), raise_server_exceptions=False)


@pytest.fixture
def second_process(api: Api) -> Iterator[TestClient]:
    """A second app on the same servers, with its own clients and nothing shared in memory."""
    accounts = bootstrap_accounts(api.services.settings, notifier=api.notifier)
    app = create_app(services=api.services, accounts=accounts)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_registrations_for_one_email_are_limited(api: Api) -> None:
    passed, refused = until_refused(lambda i: register(
        client_at(api, f"10.0.0.{i + 1}"), "ann@example.com"))
    limits = api.accounts.settings.api.limits
    assert passed == limits.registrations_per_email
    assert assert_limited(refused) <= limits.window_seconds
    assert len(api.notifier.sent) == limits.registrations_per_email
    assert register(api.client, "bob@example.com").status_code == 202


def test_registrations_from_one_address_are_limited(api: Api) -> None:
    passed, refused = until_refused(
        lambda i: register(api.client, f"user{i}@example.com"))
    limits = api.accounts.settings.api.limits
    assert passed == limits.registrations_per_address
    assert_limited(refused)
    assert register(client_at(api, "10.9.9.9"), "other@example.com").status_code == 202


def test_verifications_from_one_address_are_limited(api: Api) -> None:
    passed, refused = until_refused(
        lambda i: verify(api.client, f"user{i}@example.com", "12345678"))
    limits = api.accounts.settings.api.limits
    assert passed == limits.verifications_per_address
    assert_limited(refused)


def test_guesses_per_email_are_capped_across_codes(api: Api) -> None:
    """Five wrong guesses, then a fresh registration: its right code is still refused."""
    cap = api.accounts.settings.api.verification_max_attempts
    assert register(api.client, "ann@example.com").status_code == 202
    code = api.notifier.last_code("ann@example.com")
    for i in range(cap):
        assert verify(client_at(api, f"10.1.0.{i}"), "ann@example.com",
                      wrong(code)).status_code == 400
    fresh = register(client_at(api, "10.2.0.1"), "ann@example.com")
    if fresh.status_code == 202:
        code = api.notifier.last_code("ann@example.com")
    else:
        assert_limited(fresh)
    assert_limited(verify(client_at(api, "10.3.0.1"), "ann@example.com", code))


def test_guesses_at_an_unknown_email_are_capped_the_same(api: Api) -> None:
    cap = api.accounts.settings.api.verification_max_attempts
    passed, refused = until_refused(lambda i: verify(
        client_at(api, f"10.4.0.{i}"), "nobody@example.com", f"{i:08d}"))
    assert passed == cap
    assert_limited(refused)


def test_a_strangers_request_does_not_cancel_the_owners_pending_code(api: Api) -> None:
    assert register(api.client, "ann@example.com").status_code == 202
    owners = api.notifier.last_code("ann@example.com")
    assert register(client_at(api, "10.5.0.1"), "ann@example.com").status_code == 202
    assert api.notifier.last_code("ann@example.com") != owners
    assert verify(api.client, "ann@example.com", owners).status_code == 201


def test_a_strangers_request_never_touches_an_active_user(
        api: Api, mongo_admin: MongoClient, mongo_database_name: str) -> None:  # type: ignore[type-arg]
    key, _ = api.signup("ann@example.com")
    users = mongo_admin[mongo_database_name][USERS_COLLECTION]
    before = users.find_one({"email": "ann@example.com"})
    # ann asks for a code to sign in on a second machine; a stranger asks too
    assert register(api.client, "ann@example.com").status_code == 202
    owners = api.notifier.last_code("ann@example.com")
    assert register(client_at(api, "10.6.0.1"), "ann@example.com").status_code == 202
    assert users.find_one({"email": "ann@example.com"}) == before
    assert api.client.get("/v1/keys", headers=bearer(key)).status_code == 200
    assert verify(api.client, "ann@example.com", owners).status_code == 201
    assert users.find_one({"email": "ann@example.com"}) == before


def test_limits_hold_across_api_processes(api: Api, second_process: TestClient) -> None:
    clients = (api.client, second_process)
    passed, refused = until_refused(
        lambda i: register(clients[i % 2], f"user{i}@example.com"))
    limits = api.accounts.settings.api.limits
    assert passed == limits.registrations_per_address
    assert_limited(refused)
    assert_limited(register(clients[(passed + 1) % 2], "late@example.com"))


def test_uvicorn_with_several_workers_shares_the_limits(redis_url, mongo_url,  # type: ignore[no-untyped-def]
                                                        mongo_database_name, tmp_path) -> None:
    """`conversa api --workers 3`: each request on a new connection, so the processes share
    them out; the limit is still exact."""
    redis.Redis.from_url(redis_url).flushall()
    env = {**api_env(redis_url, mongo_url, mongo_database_name, tmp_path),
           "CONVERSA_API__LIMITS__REGISTRATIONS_PER_ADDRESS": "7"}
    port = free_port()
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "api", "--port", str(port), "--workers", "3"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, 90, log_path=log_path)
        url = f"http://127.0.0.1:{port}/v1/users"

        def send(i: int) -> httpx.Response:
            with httpx.Client(timeout=30) as client:  # a new connection each time
                return client.post(url, json={"email": f"user{i}@example.com"})

        passed, refused = until_refused(send)
        assert passed == 7
        assert_limited(refused)
    finally:
        stop_process(proc, timeout=30)
    assert log_path.read_text().count("Started server process") == 3
    assert "Traceback" not in log_path.read_text()
