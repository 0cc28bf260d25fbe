"""The UserRepository, UserVerificationRepository and JobPages contracts (adapters/ports.py),
on the memory and MongoDB adapters."""

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from adapters.memory.users import MemoryUserRepository, MemoryUserVerificationRepository
from adapters.mongodb.users import MongoUserRepository, MongoUserVerificationRepository
from adapters.ports import JobPages, UserRepository, UserVerificationRepository
from domain.job import IngestionJob, utcnow
from domain.users import UserStatus, new_api_key, new_user, verification_for
from tests.support.repositories import KINDS, TEST_TIMEOUT_MS, job_repository


@pytest.fixture(params=KINDS)
def users(request: pytest.FixtureRequest) -> Iterator[UserRepository]:
    if request.param == "memory":
        yield MemoryUserRepository()
        return
    repo = MongoUserRepository(request.getfixturevalue("mongo_url"),
                               request.getfixturevalue("mongo_database_name"), TEST_TIMEOUT_MS)
    yield repo
    repo.close()


@pytest.fixture(params=KINDS)
def codes(request: pytest.FixtureRequest) -> Iterator[UserVerificationRepository]:
    if request.param == "memory":
        yield MemoryUserVerificationRepository()
        return
    repo = MongoUserVerificationRepository(request.getfixturevalue("mongo_url"),
                                           request.getfixturevalue("mongo_database_name"),
                                           TEST_TIMEOUT_MS)
    yield repo
    repo.close()


@pytest.fixture(params=KINDS)
def pages(request: pytest.FixtureRequest) -> Iterator[JobPages]:
    for repo in job_repository(request.param, request):
        assert isinstance(repo, JobPages)
        yield repo


def test_create_is_create_or_get_by_email(users: UserRepository) -> None:
    first = users.create(new_user("ann@example.com", utcnow()))
    again = users.create(new_user("ann@example.com", utcnow()))
    assert again == first
    assert users.get(first.user_id) == first
    assert users.get_by_email("ann@example.com") == first
    assert users.get("nobody") is None
    assert users.get_by_email("nobody@example.com") is None


def test_activate_is_idempotent(users: UserRepository) -> None:
    user = users.create(new_user("ann@example.com", utcnow()))
    active = users.activate(user.user_id)
    assert active is not None
    assert active.status is UserStatus.ACTIVE
    assert active.activated_at is not None
    assert users.activate(user.user_id) == active
    assert users.activate("nobody") is None


def test_keys_are_listed_oldest_first_and_revoked_once(users: UserRepository) -> None:
    user = users.create(new_user("ann@example.com", utcnow()))
    other = users.create(new_user("bob@example.com", utcnow()))
    first, _ = new_api_key(user.user_id, utcnow() - timedelta(seconds=5))
    second, _ = new_api_key(user.user_id, utcnow())
    theirs, _ = new_api_key(other.user_id, utcnow())
    for key in (second, first, theirs):
        users.add_key(key)
    assert [k.key_id for k in users.list_keys(user.user_id)] == [first.key_id, second.key_id]
    assert users.get_key(first.key_id) is not None
    assert users.get_key("0" * 16) is None
    assert users.revoke_key(user.user_id, theirs.key_id) is None
    revoked = users.revoke_key(user.user_id, first.key_id)
    assert revoked is not None
    assert revoked.revoked_at is not None
    again = users.revoke_key(user.user_id, first.key_id)
    assert again is not None
    assert again.revoked_at == revoked.revoked_at
    stored = users.get_key(theirs.key_id)
    assert stored is not None
    assert stored.active


def test_codes_are_added_beside_live_ones_never_replacing_them(
        codes: UserVerificationRepository) -> None:
    now = utcnow()
    first = verification_for("u1", "11111111", now, timedelta(minutes=5))
    second = verification_for("u1", "22222222", now, timedelta(minutes=6))
    assert codes.add(first, 2)
    assert codes.add(second, 2)
    assert not codes.add(verification_for("u1", "33333333", now, timedelta(minutes=5)), 2)
    pending = codes.get("u1")
    assert pending is not None
    assert [c.code_hash for c in pending.codes] == [first.code_hash, second.code_hash]
    assert pending.matches("11111111")
    assert pending.matches("22222222")
    assert not pending.matches("33333333")
    assert pending.attempts == 0
    assert pending.expires_at == max(c.expires_at for c in pending.codes)


def test_expired_codes_are_gone_and_free_their_place(codes: UserVerificationRepository) -> None:
    now = utcnow()
    assert codes.add(verification_for("u2", "33333333", now - timedelta(minutes=10),
                                      timedelta(minutes=5)), 1)
    assert codes.get("u2") is None
    assert codes.count_attempt("u2") is None
    assert codes.add(verification_for("u2", "44444444", now, timedelta(minutes=5)), 1)
    pending = codes.get("u2")
    assert pending is not None
    assert len(pending.codes) == 1
    assert pending.matches("44444444")
    codes.delete("u2")
    codes.delete("u2")
    assert codes.get("u2") is None


def test_the_guess_count_is_shared_by_the_codes_and_kept_when_one_is_added(
        codes: UserVerificationRepository) -> None:
    now = utcnow()
    assert codes.add(verification_for("u1", "11111111", now, timedelta(minutes=5)), 3)
    assert codes.count_attempt("u1") == 1
    assert codes.count_attempt("u1") == 2
    assert codes.add(verification_for("u1", "22222222", now, timedelta(minutes=5)), 3)
    pending = codes.get("u1")
    assert pending is not None
    assert pending.attempts == 2
    assert codes.count_attempt("u1") == 3
    codes.delete("u1")
    assert codes.add(verification_for("u1", "33333333", now, timedelta(minutes=5)), 3)
    again = codes.get("u1")
    assert again is not None
    assert again.attempts == 0


def test_concurrent_attempts_each_get_their_own_count(codes: UserVerificationRepository
                                                      ) -> None:
    assert codes.add(verification_for("u1", "11111111", utcnow(), timedelta(minutes=5)), 3)
    counts: list[int | None] = []
    threads = [threading.Thread(target=lambda: counts.append(codes.count_attempt("u1")))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(c for c in counts if c is not None) == list(range(1, 9))


def test_concurrent_adds_and_guesses_lose_nothing(codes: UserVerificationRepository) -> None:
    """Adds race each other and the guesses: never more live codes than allowed, no guess
    lost, no code lost that was reported added."""
    now = utcnow()
    assert codes.add(verification_for("u1", "00000000", now, timedelta(minutes=5)), 4)
    added: list[bool] = []
    counts: list[int | None] = []
    work = [lambda i=i: added.append(codes.add(verification_for(
        "u1", f"{i:08d}", now, timedelta(minutes=5)), 4)) for i in range(1, 7)]
    work += [lambda: counts.append(codes.count_attempt("u1")) for _ in range(6)]
    threads = [threading.Thread(target=job) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pending = codes.get("u1")
    assert pending is not None
    assert added.count(True) == 3
    assert len(pending.codes) == 4
    assert pending.attempts == 6
    assert sorted(c for c in counts if c is not None) == list(range(1, 7))


def test_job_pages_walk_newest_first_without_gaps(pages: JobPages) -> None:
    base = utcnow()
    jobs = [IngestionJob(job_id=f"job-{i:04d}", tenant="t1" if i % 4 else "t2",
                         document_id="d", source="s", source_uri="file:///x", source_name="x",
                         created_at=base - timedelta(seconds=i // 2))
            for i in range(12)]
    for job in jobs:
        pages.create(job)  # type: ignore[attr-defined]
    expected = sorted((j for j in jobs if j.tenant == "t1"),
                      key=lambda j: (j.created_at, j.job_id), reverse=True)
    seen, after = [], None
    while True:
        page = pages.list_jobs_page(tenant="t1", limit=4, after=after)
        if not page:
            break
        seen += page
        after = (page[-1].created_at, page[-1].job_id)
    assert [j.job_id for j in seen] == [j.job_id for j in expected]
    assert pages.list_jobs_page(tenant="t1", limit=0) == []


def test_a_code_stored_in_the_earlier_one_code_layout_is_replaced_cleanly(
        mongo_url: str, mongo_database_name: str) -> None:
    """A document written before codes were kept side by side (no ``codes``, no ``rev``) is
    no live code, and adding a code over it works."""
    repo = MongoUserVerificationRepository(mongo_url, mongo_database_name, TEST_TIMEOUT_MS)
    try:
        now = utcnow()
        repo._collection().insert_one({"_id": "u1", "code_hash": "scrypt$00$00", "attempts": 4,
                                       "expires_at": now + timedelta(minutes=5),
                                       "created_at": now})
        assert repo.get("u1") is None
        assert repo.add(verification_for("u1", "11111111", now, timedelta(minutes=5)), 3)
        pending = repo.get("u1")
        assert pending is not None
        assert pending.attempts == 0
        assert pending.matches("11111111")
    finally:
        repo.close()
