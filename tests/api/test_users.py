"""Registration, verification codes and API keys through the API, on the MongoDB adapters."""

from datetime import timedelta

import pytest
import redis
from pymongo import MongoClient

from adapters.mongodb.users import (
    API_KEYS_COLLECTION,
    USERS_COLLECTION,
    VERIFICATIONS_COLLECTION,
)
from domain.job import utcnow
from domain.users import verification_for
from tests.api.conftest import Api, bearer

pytestmark = pytest.mark.integration


def verify(api: Api, email: str, code: str):  # type: ignore[no-untyped-def]
    return api.client.post("/v1/users/verify", json={"email": email, "code": code})


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def test_register_sends_a_code_stored_only_as_a_hash_with_a_ttl_index(
        api: Api, mongo_admin: MongoClient, mongo_database_name: str) -> None:  # type: ignore[type-arg]
    answer = api.client.post("/v1/users", json={"email": " Ann@Example.com "})
    assert answer.status_code == 202
    assert answer.json()["email"] == "ann@example.com"
    code = api.notifier.last_code("ann@example.com")
    assert code.isdigit()
    assert len(code) == 8
    db = mongo_admin[mongo_database_name]
    [stored] = list(db[VERIFICATIONS_COLLECTION].find())
    assert code not in str(stored)
    [sent] = stored["codes"]
    assert sent["code_hash"].startswith("scrypt$")
    assert stored["attempts"] == 0
    assert stored["expires_at"] == sent["expires_at"] > utcnow()
    ttl = db[VERIFICATIONS_COLLECTION].index_information()["expires_at_ttl"]
    assert ttl["expireAfterSeconds"] == 0
    [user] = list(db[USERS_COLLECTION].find())
    assert user["status"] == "pending"


def test_verifying_activates_and_returns_a_key_shown_once_stored_as_a_hash(
        api: Api, mongo_admin: MongoClient, mongo_database_name: str) -> None:  # type: ignore[type-arg]
    api.client.post("/v1/users", json={"email": "ann@example.com"})
    answer = verify(api, "ann@example.com", api.notifier.last_code("ann@example.com"))
    assert answer.status_code == 201
    issued = answer.json()
    assert issued["api_key"].startswith(issued["prefix"] + "_")
    assert issued["tenant"].startswith("u-")
    db = mongo_admin[mongo_database_name]
    everything = str(list(db[API_KEYS_COLLECTION].find())) + str(list(
        db[USERS_COLLECTION].find()))
    assert issued["api_key"] not in everything
    assert issued["api_key"].rsplit("_", 1)[1] not in everything
    assert db[USERS_COLLECTION].find_one()["status"] == "active"  # type: ignore[index]
    assert db[VERIFICATIONS_COLLECTION].count_documents({}) == 0
    # the code was used up
    assert verify(api, "ann@example.com", api.notifier.last_code("ann@example.com")
                  ).status_code == 400
    listed = api.client.get("/v1/keys", headers=bearer(issued["api_key"])).json()["keys"]
    assert [key["prefix"] for key in listed] == [issued["prefix"]]
    assert issued["api_key"] not in str(listed)
    assert "hash" not in str(listed)


def test_five_wrong_codes_use_the_guesses_up_even_when_the_limiter_forgot(api: Api) -> None:
    """The guess count in MongoDB holds the cap by itself: with Redis flushed after five wrong
    guesses, the right code and a new registration are still refused until the codes expire."""
    api.client.post("/v1/users", json={"email": "ann@example.com"})
    code = api.notifier.last_code("ann@example.com")
    for _ in range(5):
        refused = verify(api, "ann@example.com", wrong(code))
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "verification_failed"
    assert verify(api, "ann@example.com", code).status_code == 429
    redis.Redis.from_url(api.env["CONVERSA_BROKER_URL"]).flushall()
    locked = verify(api, "ann@example.com", code)
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= (
        api.accounts.settings.api.verification_ttl_seconds)
    assert api.client.post("/v1/users", json={"email": "ann@example.com"}).status_code == 429


def test_four_wrong_codes_still_allow_the_right_one(api: Api) -> None:
    api.client.post("/v1/users", json={"email": "ann@example.com"})
    code = api.notifier.last_code("ann@example.com")
    for _ in range(4):
        assert verify(api, "ann@example.com", wrong(code)).status_code == 400
    assert verify(api, "ann@example.com", code).status_code == 201


def test_an_expired_code_is_refused(api: Api) -> None:
    api.client.post("/v1/users", json={"email": "ann@example.com"})
    user = api.accounts.users.get_by_email("ann@example.com")
    assert user is not None
    api.accounts.verifications.delete(user.user_id)
    assert api.accounts.verifications.add(verification_for(
        user.user_id, "12345678", utcnow() - timedelta(minutes=20), timedelta(minutes=15)), 3)
    assert verify(api, "ann@example.com", "12345678").status_code == 400


def test_unknown_emails_get_the_same_answer(api: Api) -> None:
    refused = verify(api, "nobody@example.com", "12345678")
    assert refused.status_code == 400
    api.client.post("/v1/users", json={"email": "ann@example.com"})
    assert verify(api, "ann@example.com", "00000000").json() == refused.json() or \
        api.notifier.last_code("ann@example.com") == "00000000"


def test_keys_rotate_and_revoke(api: Api) -> None:
    key, _ = api.signup("ann@example.com")
    key_id = api.client.get("/v1/keys", headers=bearer(key)).json()["keys"][0]["key_id"]
    rotated = api.client.post(f"/v1/keys/{key_id}/rotate", headers=bearer(key))
    assert rotated.status_code == 201
    new_key = rotated.json()["api_key"]
    assert api.client.get("/v1/keys", headers=bearer(key)).status_code == 401
    keys = api.client.get("/v1/keys", headers=bearer(new_key)).json()["keys"]
    assert [(k["key_id"], k["active"]) for k in keys] == [
        (key_id, False), (rotated.json()["key_id"], True)]
    assert api.client.post(f"/v1/keys/{key_id}/rotate", headers=bearer(new_key)
                           ).status_code == 404
    revoked = api.client.delete(f"/v1/keys/{rotated.json()['key_id']}",
                                headers=bearer(new_key))
    assert revoked.status_code == 200
    assert revoked.json()["active"] is False
    assert api.client.get("/v1/keys", headers=bearer(new_key)).status_code == 401


def test_signing_in_again_adds_a_key(api: Api) -> None:
    first, tenant = api.signup("ann@example.com")
    second, same_tenant = api.signup("ann@example.com")
    assert first != second
    assert tenant == same_tenant
    assert len(api.client.get("/v1/keys", headers=bearer(second)).json()["keys"]) == 2


def test_a_tampered_key_is_refused(api: Api) -> None:
    key, _ = api.signup("ann@example.com")
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert api.client.get("/v1/keys", headers=bearer(tampered)).status_code == 401
