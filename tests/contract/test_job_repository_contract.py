"""The JobRepository contract (adapters/ports.py), checked on the memory and MongoDB adapters."""

import itertools
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

from adapters.mongodb.repositories import MongoJobRepository, translate_error
from adapters.ports import JobRepository
from domain.errors import NotFoundError, PermanentError, TransientError
from domain.job import IngestionJob, StageError
from domain.status import FORWARD_ORDER, JobStatus, Stage
from localstack.servers import free_port
from tests.support import repositories

NON_TERMINAL = [status for status in JobStatus if not status.is_terminal]
TERMINAL = [status for status in JobStatus if status.is_terminal]


@pytest.fixture(params=repositories.KINDS)
def repo(request: pytest.FixtureRequest) -> Iterator[JobRepository]:
    yield from repositories.job_repository(request.param, request)


def make_job(job_id: str = "job-000001", *, tenant: str = "acme",
             status: JobStatus = JobStatus.QUEUED, created_at: datetime | None = None,
             updated_at: datetime | None = None, source: str = "docs/a.txt") -> IngestionJob:
    now = repositories.now_ms()
    return IngestionJob(
        job_id=job_id, tenant=tenant, document_id=f"doc-{job_id}", source=source,
        source_uri=f"file:///tmp/{job_id}", source_name="a.txt", status=status,
        created_at=created_at or now, updated_at=updated_at or now,
    )


def error(stage: Stage = Stage.EXTRACT) -> StageError:
    return StageError(stage=stage, type="ValueError", message="could not decode")


# -- create / get -----------------------------------------------------------------------------

def test_create_stores_the_job_and_get_returns_it(repo: JobRepository) -> None:
    job = make_job()
    created = repo.create(job)
    assert created == job
    assert repo.get(job.job_id) == job


def test_create_is_create_or_get(repo: JobRepository) -> None:
    first = repo.create(make_job(source="first"))
    again = repo.create(make_job(source="second", status=JobStatus.STORED))
    assert again == first
    assert repo.get(first.job_id).source == "first"
    assert repo.get(first.job_id).status is JobStatus.QUEUED
    assert len(repo.list_jobs()) == 1


def test_create_racing_threads_all_get_the_same_record(repo: JobRepository) -> None:
    barrier = threading.Barrier(8)
    results: list[IngestionJob] = []

    def create(n: int) -> None:
        barrier.wait()
        results.append(repo.create(make_job("job-racing", source=f"s{n}")))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len({job.source for job in results}) == 1
    assert repo.get("job-racing") == results[0]


def test_get_of_a_missing_job_raises_not_found(repo: JobRepository) -> None:
    with pytest.raises(NotFoundError):
        repo.get("job-missing")


# -- get_many ---------------------------------------------------------------------------------

def test_get_many_reads_the_found_jobs_in_the_order_asked(repo: JobRepository) -> None:
    for n in range(5):
        repo.create(make_job(f"job-{n:06d}"))
    asked = ["job-000003", "job-missing", "job-000000", "job-000003", "job-000004"]
    got = repo.get_many(asked)
    assert [job.job_id for job in got] == ["job-000003", "job-000000", "job-000004"]
    assert got[0] == repo.get("job-000003")
    assert repo.get_many([]) == []


def test_get_many_sees_each_jobs_latest_status(repo: JobRepository) -> None:
    repo.create(make_job("job-000001"))
    repo.create(make_job("job-000002"))
    repo.transition("job-000002", JobStatus.QUEUED, JobStatus.STORED, {})
    statuses = {job.job_id: job.status for job in repo.get_many(["job-000001", "job-000002"])}
    assert statuses == {"job-000001": JobStatus.QUEUED, "job-000002": JobStatus.STORED}


def test_get_many_reads_more_ids_than_one_page(repo: JobRepository) -> None:
    ids = [f"job-{n:06d}" for n in range(1203)]
    for job_id in ids[::100]:
        repo.create(make_job(job_id))
    assert [job.job_id for job in repo.get_many(list(reversed(ids)))] == list(
        reversed(ids[::100]))


# -- transition -------------------------------------------------------------------------------

def test_transition_moves_sets_fields_and_stamps_times(repo: JobRepository) -> None:
    job = repo.create(make_job(updated_at=repositories.now_ms() - timedelta(minutes=5)))
    moved = repo.transition(job.job_id, JobStatus.QUEUED, JobStatus.STORED,
                            {"sha256": "ab" * 32, "size": 42, "object_key": "acme/abab"})
    assert moved is not None
    assert moved.status is JobStatus.STORED
    assert (moved.sha256, moved.size, moved.object_key) == ("ab" * 32, 42, "acme/abab")
    assert moved.updated_at > job.updated_at
    assert set(moved.stage_times) == {"stored"}
    assert moved.stage_times["stored"] >= job.updated_at
    assert moved.created_at == job.created_at
    assert repo.get(job.job_id) == moved


def test_transition_loser_gets_none_and_changes_nothing(repo: JobRepository) -> None:
    job = repo.create(make_job())
    assert repo.transition(job.job_id, JobStatus.QUEUED, JobStatus.STORED, {}) is not None
    before = repo.get(job.job_id)
    assert repo.transition(job.job_id, JobStatus.QUEUED, JobStatus.STORED,
                           {"sha256": "late"}) is None
    assert repo.get(job.job_id) == before


def test_transition_of_a_missing_job_returns_none(repo: JobRepository) -> None:
    assert repo.transition("job-missing", JobStatus.QUEUED, JobStatus.STORED, {}) is None


def test_exactly_one_of_many_racing_threads_wins(repo: JobRepository) -> None:
    job = repo.create(make_job())
    racers = 16
    barrier = threading.Barrier(racers)
    outcomes: dict[int, IngestionJob | None] = {}
    failures: list[BaseException] = []

    def race(n: int) -> None:
        try:
            barrier.wait()
            outcomes[n] = repo.transition(job.job_id, JobStatus.QUEUED, JobStatus.STORED,
                                          {"sha256": f"sha-{n}"})
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    winners = [n for n, result in outcomes.items() if result is not None]
    assert len(outcomes) == racers
    assert len(winners) == 1
    assert repo.get(job.job_id).sha256 == f"sha-{winners[0]}"


@pytest.mark.parametrize(("current", "new"), [
    (JobStatus.QUEUED, JobStatus.RECORDED),     # skips a stage
    (JobStatus.QUEUED, JobStatus.DONE),
    (JobStatus.STORED, JobStatus.QUEUED),       # backwards
    (JobStatus.EMBEDDED, JobStatus.EXTRACTED),
    (JobStatus.QUEUED, JobStatus.QUEUED),       # standing still
    (JobStatus.DONE, JobStatus.FAILED),         # from terminal
    (JobStatus.FAILED, JobStatus.QUEUED),       # re-drive is a separate call
])
def test_illegal_moves_are_refused(repo: JobRepository, current: JobStatus,
                                   new: JobStatus) -> None:
    job = repo.create(make_job(status=current))
    with pytest.raises(PermanentError):
        repo.transition(job.job_id, current, new, {})
    assert repo.get(job.job_id) == job


def test_a_job_walks_forward_one_step_at_a_time_and_never_back(repo: JobRepository) -> None:
    job = repo.create(make_job())
    for current, new in itertools.pairwise(FORWARD_ORDER):
        moved = repo.transition(job.job_id, current, new, {})
        assert moved is not None
        assert moved.status is new
    final = repo.get(job.job_id)
    assert final.status is JobStatus.DONE
    assert set(final.stage_times) == {status.value for status in FORWARD_ORDER[1:]}
    for earlier in FORWARD_ORDER[:-1]:
        with pytest.raises(PermanentError):
            repo.transition(job.job_id, JobStatus.DONE, earlier, {})
    assert repo.get(job.job_id) == final


def test_transition_to_failed_is_legal_from_a_non_terminal_status(repo: JobRepository) -> None:
    job = repo.create(make_job(status=JobStatus.EXTRACTED))
    moved = repo.transition(job.job_id, JobStatus.EXTRACTED, JobStatus.FAILED,
                            {"error": error()})
    assert moved is not None
    assert moved.status is JobStatus.FAILED
    assert moved.error == error()


# -- fail / redrive ---------------------------------------------------------------------------

@pytest.mark.parametrize("status", NON_TERMINAL)
def test_fail_moves_any_non_terminal_job_to_failed(repo: JobRepository,
                                                   status: JobStatus) -> None:
    job = repo.create(make_job(status=status))
    failed = repo.fail(job.job_id, error(Stage.EMBED))
    assert failed is not None
    assert failed.status is JobStatus.FAILED
    assert failed.error == error(Stage.EMBED)
    assert failed.failed_stage is Stage.EMBED
    assert "failed" in failed.stage_times
    assert repo.get(job.job_id) == failed


@pytest.mark.parametrize("status", TERMINAL)
def test_fail_of_a_terminal_job_returns_none(repo: JobRepository, status: JobStatus) -> None:
    job = repo.create(make_job(status=status))
    assert repo.fail(job.job_id, error()) is None
    assert repo.get(job.job_id) == job


def test_fail_keeps_the_first_error(repo: JobRepository) -> None:
    job = repo.create(make_job())
    repo.fail(job.job_id, error(Stage.STORE))
    assert repo.fail(job.job_id, error(Stage.INDEX)) is None
    assert repo.get(job.job_id).failed_stage is Stage.STORE


def test_fail_of_a_missing_job_returns_none(repo: JobRepository) -> None:
    assert repo.fail("job-missing", error()) is None


def test_redrive_moves_a_failed_job_back_and_clears_the_error(repo: JobRepository) -> None:
    job = repo.create(make_job(status=JobStatus.RECORDED))
    repo.count_attempt(job.job_id, "extract")
    failed = repo.fail(job.job_id, error(Stage.EXTRACT))
    assert failed is not None
    redriven = repo.redrive(job.job_id, JobStatus.RECORDED)
    assert redriven is not None
    assert redriven.status is JobStatus.RECORDED
    assert redriven.error is None
    assert redriven.attempts == {"extract": 1}
    assert redriven.updated_at >= failed.updated_at
    assert repo.get(job.job_id) == redriven
    # and it can go forward again
    assert repo.transition(job.job_id, JobStatus.RECORDED, JobStatus.EXTRACTED, {}) is not None


@pytest.mark.parametrize("status", [s for s in JobStatus if s is not JobStatus.FAILED])
def test_redrive_of_a_job_that_is_not_failed_returns_none(repo: JobRepository,
                                                         status: JobStatus) -> None:
    job = repo.create(make_job(status=status))
    assert repo.redrive(job.job_id, JobStatus.QUEUED) is None
    assert repo.get(job.job_id) == job


def test_redrive_of_a_missing_job_returns_none(repo: JobRepository) -> None:
    assert repo.redrive("job-missing", JobStatus.QUEUED) is None


# -- attempts ---------------------------------------------------------------------------------

def test_count_attempt_increments_each_stage_on_its_own(repo: JobRepository) -> None:
    job = repo.create(make_job())
    assert [repo.count_attempt(job.job_id, "store") for _ in range(3)] == [1, 2, 3]
    assert repo.count_attempt(job.job_id, Stage.EMBED) == 1
    assert repo.get(job.job_id).attempts == {"store": 3, "embed": 1}


def test_count_attempt_from_racing_threads_loses_no_count(repo: JobRepository) -> None:
    job = repo.create(make_job())
    counts: list[int] = []

    def count() -> None:
        for _ in range(5):
            counts.append(repo.count_attempt(job.job_id, "index"))

    threads = [threading.Thread(target=count) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 31))
    assert repo.get(job.job_id).attempts == {"index": 30}


def test_count_attempt_of_a_missing_job_raises_not_found(repo: JobRepository) -> None:
    with pytest.raises(NotFoundError):
        repo.count_attempt("job-missing", "store")


def test_begin_attempt_counts_and_returns_the_job_after_it(repo: JobRepository) -> None:
    job = repo.create(make_job())
    first = repo.begin_attempt(job.job_id, Stage.STORE)
    second = repo.begin_attempt(job.job_id, "store")
    assert (first.attempts, second.attempts) == ({"store": 1}, {"store": 2})
    assert second.model_dump(exclude={"attempts", "updated_at"}) == job.model_dump(
        exclude={"attempts", "updated_at"})
    assert second.updated_at >= job.updated_at
    assert repo.get(job.job_id) == second


def test_begin_attempt_of_a_missing_job_raises_not_found(repo: JobRepository) -> None:
    with pytest.raises(NotFoundError):
        repo.begin_attempt("job-missing", "store")


def test_begin_attempt_from_racing_threads_loses_no_count(repo: JobRepository) -> None:
    job = repo.create(make_job())
    threads = [threading.Thread(target=lambda: [repo.begin_attempt(job.job_id, "embed")
                                                for _ in range(5)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert repo.get(job.job_id).attempts == {"embed": 20}


def test_count_in_flight_counts_the_tenants_unfinished_jobs_up_to_a_bound(
        repo: JobRepository) -> None:
    for number, status in enumerate([JobStatus.QUEUED, JobStatus.EMBEDDED, JobStatus.DONE,
                                     JobStatus.FAILED, JobStatus.INDEXED]):
        repo.create(make_job(job_id=f"job-{number}", status=status))
    repo.create(make_job(job_id="job-other", tenant="other", status=JobStatus.QUEUED))
    assert repo.count_in_flight("acme", 10) == 3
    assert repo.count_in_flight("acme", 2) == 2
    assert repo.count_in_flight("acme", 0) == 0
    assert repo.count_in_flight("nobody", 10) == 0


# -- listing ----------------------------------------------------------------------------------

def test_list_jobs_newest_first_with_filters_and_limit(repo: JobRepository) -> None:
    base = repositories.now_ms() - timedelta(hours=1)
    specs = [  # (job id, tenant, status, minutes after base)
        ("job-a1", "acme", JobStatus.QUEUED, 1),
        ("job-b1", "beta", JobStatus.DONE, 2),
        ("job-a2", "acme", JobStatus.DONE, 3),
        ("job-a3", "acme", JobStatus.FAILED, 4),
        ("job-b2", "beta", JobStatus.QUEUED, 5),
        ("job-a4", "acme", JobStatus.DONE, 6),
    ]
    for job_id, tenant, status, minutes in specs:
        repo.create(make_job(job_id, tenant=tenant, status=status,
                             created_at=base + timedelta(minutes=minutes)))

    def ids(jobs: list[IngestionJob]) -> list[str]:
        return [job.job_id for job in jobs]

    assert ids(repo.list_jobs()) == ["job-a4", "job-b2", "job-a3", "job-a2", "job-b1", "job-a1"]
    assert ids(repo.list_jobs(tenant="acme")) == ["job-a4", "job-a3", "job-a2", "job-a1"]
    assert ids(repo.list_jobs(status=JobStatus.DONE)) == ["job-a4", "job-a2", "job-b1"]
    assert ids(repo.list_jobs(tenant="acme", status=JobStatus.DONE)) == ["job-a4", "job-a2"]
    assert ids(repo.list_jobs(tenant="beta", status=JobStatus.FAILED)) == []
    assert ids(repo.list_jobs(tenant="nobody")) == []
    assert ids(repo.list_jobs(limit=2)) == ["job-a4", "job-b2"]
    assert ids(repo.list_jobs(tenant="acme", limit=3)) == ["job-a4", "job-a3", "job-a2"]


def test_list_jobs_breaks_ties_by_job_id(repo: JobRepository) -> None:
    same = repositories.now_ms()
    for job_id in ("job-t2", "job-t1", "job-t3"):
        repo.create(make_job(job_id, created_at=same))
    assert [job.job_id for job in repo.list_jobs()] == ["job-t3", "job-t2", "job-t1"]


def test_list_stale_returns_old_non_terminal_jobs_oldest_first(repo: JobRepository) -> None:
    now = repositories.now_ms()
    specs = [  # (job id, status, minutes since last update)
        ("job-s1", JobStatus.STORED, 30),
        ("job-s2", JobStatus.QUEUED, 90),
        ("job-s3", JobStatus.EMBEDDED, 60),
        ("job-fresh", JobStatus.QUEUED, 0),
        ("job-done", JobStatus.DONE, 120),
        ("job-failed", JobStatus.FAILED, 120),
        ("job-s4", JobStatus.INDEXED, 11),
    ]
    for job_id, status, minutes in specs:
        repo.create(make_job(job_id, status=status, created_at=now - timedelta(hours=3),
                             updated_at=now - timedelta(minutes=minutes)))

    def ids(jobs: list[IngestionJob]) -> list[str]:
        return [job.job_id for job in jobs]

    assert ids(repo.list_stale(older_than_seconds=600)) == ["job-s2", "job-s3", "job-s1",
                                                            "job-s4"]
    assert ids(repo.list_stale(older_than_seconds=45 * 60)) == ["job-s2", "job-s3"]
    assert ids(repo.list_stale(older_than_seconds=600, limit=2)) == ["job-s2", "job-s3"]
    assert ids(repo.list_stale(older_than_seconds=4 * 3600)) == []


def test_a_transition_makes_a_stale_job_fresh(repo: JobRepository) -> None:
    old = repositories.now_ms() - timedelta(hours=1)
    job = repo.create(make_job(created_at=old, updated_at=old))
    assert [j.job_id for j in repo.list_stale(older_than_seconds=60)] == [job.job_id]
    repo.transition(job.job_id, JobStatus.QUEUED, JobStatus.STORED, {})
    assert repo.list_stale(older_than_seconds=60) == []


# -- datetimes --------------------------------------------------------------------------------

PARIS = timezone(timedelta(hours=2))


def test_datetimes_round_trip_timezone_aware(repo: JobRepository) -> None:
    created = datetime(2026, 3, 1, 14, 30, 15, 123456, tzinfo=PARIS)
    job = repo.create(make_job(created_at=created, updated_at=created))
    stored = repo.get(job.job_id)
    assert stored.created_at.tzinfo is not None
    # the same instant (MongoDB keeps milliseconds)
    assert abs(stored.created_at - created) < timedelta(milliseconds=1)
    assert stored.created_at.astimezone(UTC).replace(microsecond=0) == datetime(
        2026, 3, 1, 12, 30, 15, tzinfo=UTC)
    moved = repo.transition(job.job_id, JobStatus.QUEUED, JobStatus.STORED, {})
    assert moved is not None
    for value in (moved.created_at, moved.updated_at, moved.stage_times["stored"]):
        assert value.tzinfo is not None
    assert abs(moved.updated_at - datetime.now(UTC)) < timedelta(minutes=1)


# -- MongoDB-specific: errors, fields, fork ---------------------------------------------------

def test_a_repository_on_a_closed_port_raises_transient_error_quickly() -> None:
    port = free_port()
    repo = MongoJobRepository(f"mongodb://conversa:s3cret-pw@127.0.0.1:{port}/", "x",
                              timeout_ms=300)
    try:
        for call in (lambda: repo.get("job-000001"), lambda: repo.create(make_job()),
                     lambda: repo.list_stale(older_than_seconds=1)):
            started = time.monotonic()
            with pytest.raises(TransientError) as caught:
                call()
            assert time.monotonic() - started < 5
            assert f"127.0.0.1:{port}" in str(caught.value)
            assert "s3cret-pw" not in str(caught.value)
            assert "conversa:" not in str(caught.value)
    finally:
        repo.close()


@pytest.mark.parametrize(("exc", "kind"), [
    (AutoReconnect("connection closed"), TransientError),
    (NetworkTimeout("timed out"), TransientError),
    (ServerSelectionTimeoutError("no servers"), TransientError),
    (ExecutionTimeout("operation exceeded time limit", code=50), TransientError),
    (WTimeoutError("waiting for replication timed out", code=64), TransientError),
    (NotPrimaryError("not primary"), TransientError),
    (OperationFailure("interrupted at shutdown", code=11600), TransientError),
    (OperationFailure("write conflict", code=112,
                      details={"errorLabels": ["TransientTransactionError"]}), TransientError),
    (OperationFailure("unknown operator: $bogus", code=2), PermanentError),
    (DuplicateKeyError("E11000 duplicate key", code=11000), PermanentError),
])
def test_translate_error_sorts_transient_from_permanent(exc: Exception,
                                                        kind: type[Exception]) -> None:
    url = "mongodb://admin:hunter2@db.example:27017/conversa?authSource=admin"
    translated = translate_error(exc, url, "reading job j")
    assert type(translated) is kind
    assert "db.example:27017" in str(translated)
    assert "hunter2" not in str(translated)
    assert "admin:" not in str(translated)


def test_translate_error_redacts_credentials_echoed_by_the_driver() -> None:
    url = "mongodb://admin:hunter2@db.example:27017/"
    translated = translate_error(OperationFailure("auth failed for admin:hunter2"), url, "x")
    assert "hunter2" not in str(translated)


@pytest.fixture
def mongo_repo(mongo_url: str, mongo_database_name: str) -> Iterator[MongoJobRepository]:
    repo = MongoJobRepository(mongo_url, mongo_database_name, repositories.TEST_TIMEOUT_MS)
    yield repo
    repo.close()


def test_mongo_gives_datetimes_back_in_utc(mongo_repo: MongoJobRepository) -> None:
    created = datetime(2026, 3, 1, 14, 30, 15, 123456, tzinfo=PARIS)
    job = mongo_repo.create(make_job(created_at=created, updated_at=created))
    assert job.created_at == datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)
    assert job.created_at.utcoffset() == timedelta(0)
    assert mongo_repo.get(job.job_id) == job
    naive = datetime(2026, 3, 1, 12, 0, 0)  # naive means UTC, as BSON has it
    other = mongo_repo.create(make_job("job-naive", created_at=naive))
    assert mongo_repo.get(other.job_id).created_at == naive.replace(tzinfo=UTC)


@pytest.mark.parametrize("fields", [
    {"status": "done"}, {"job_id": "other"}, {"updated_at": datetime.now(UTC)},
    {"stage_times": {}}, {"no_such_field": 1}, {"size": "not a number"},
    {"error": {"stage": "nope", "type": "X", "message": "m"}},
])
def test_mongo_transition_refuses_bad_fields_before_writing(
        mongo_repo: MongoJobRepository, fields: dict[str, object]) -> None:
    job = mongo_repo.create(make_job())
    with pytest.raises(PermanentError):
        mongo_repo.transition(job.job_id, JobStatus.QUEUED, JobStatus.STORED, fields)
    assert mongo_repo.get(job.job_id) == job


def test_mongo_repository_works_in_a_forked_child(mongo_repo: MongoJobRepository) -> None:
    job = mongo_repo.create(make_job())  # the parent's client now exists
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            moved = mongo_repo.transition(job.job_id, JobStatus.QUEUED, JobStatus.STORED,
                                          {"sha256": "from-child"})
            os.write(write_end, b"ok" if moved is not None else b"lost")
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read_end, 16)
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0
    assert answer == b"ok"
    # the parent's own client still works, and sees the child's write
    assert mongo_repo.get(job.job_id).sha256 == "from-child"


@pytest.mark.parametrize(("w", "journal", "expected"), [
    ("majority", True, {"w": "majority", "j": True}),
    ("1", False, {"w": 1, "j": False}),
    (1, None, {"w": 1}),
])
def test_mongo_write_concern_comes_from_the_constructor(
        mongo_url: str, mongo_database_name: str, w: int | str, journal: bool | None,
        expected: dict[str, object]) -> None:
    repo = MongoJobRepository(mongo_url, mongo_database_name, write_concern_w=w,
                              journal=journal)
    try:
        assert repo.create(make_job()).job_id == "job-000001"
        assert repo._collection().write_concern.document == expected
    finally:
        repo.close()
