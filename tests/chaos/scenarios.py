"""The chaos scenarios: one fault each, injected into the same workload on a fresh stack, then
the one checker (``tests.support.chaos_check``).

Every scenario uploads each tenant's documents (CLI and API), injects its fault while they
flow, updates and deletes a few finished documents, waits until every accepted job has ended
(bounded) and checks. ``SCENARIOS`` lists them in order of value; ``REDUCED`` names the ones
the normal test run includes (one per kind of fault, each passing on main).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from adapters.celery.topology import STAGE_QUEUES
from domain.status import STAGE_INPUT, JobStatus, Stage, rank
from pipeline.search import search
from tests.chaos.stack import RECOVERY_BOUNDS, ChaosStack, chaos_stack
from tests.chaos.workload import Workload, marked_text, wait_all_terminal
from tests.support.chaos_check import Report, StoreView, check
from tests.support.documents import encrypt_pdf, make_docx_bomb, make_pdf
from tests.support.workers import producer

#: How long a scenario waits for every job to end after its fault.
SETTLE_TIMEOUT_S = 150.0
MID_STAGE_TIMEOUT_S = 60.0


@dataclass
class Run:
    """One scenario's run: the stack, the workload, and when the fault struck."""

    stack: ChaosStack
    workload: Workload
    fault_at: float | None = None
    #: every time the fault struck (one fault may strike once per stage)
    strikes: list[float] = field(default_factory=list)
    #: accepted jobs not yet ended when the fault struck (the last look before it)
    in_flight: int = 0
    notes: list[str] = field(default_factory=list)
    #: set when every upload of the workload has been sent
    ingested: threading.Event = field(default_factory=threading.Event)
    _seen_in_flight: int = 0
    _mongo: MongoClient[dict[str, Any]] | None = None

    def struck(self) -> None:
        self.strikes.append(time.time())
        if self.fault_at is None:
            self.fault_at = time.time()
            self.in_flight = self._seen_in_flight

    def mid_stage(self, stage: Stage, timeout: float = MID_STAGE_TIMEOUT_S) -> str | None:
        """A job of the ledger that has started ``stage`` and not finished it; None when no
        job did within ``timeout``, or as soon as the uploads are in and every job is past
        the stage (none can still enter it). One query per look, so a short stage is seen."""
        wanted = STAGE_INPUT[stage]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ingested = self.ingested.is_set()
            ids = [upload.job_id for upload in list(self.workload.ledger.uploads)]
            try:
                rows = list(self._job_records().find(
                    {"_id": {"$in": ids}}, {"status": 1, f"attempts.{stage.value}": 1}))
            except PyMongoError:
                time.sleep(0.1)
                continue
            live = [row for row in rows if not JobStatus(row["status"]).is_terminal]
            self._seen_in_flight = len(live)
            for row in live:
                if row["status"] == wanted.value \
                        and (row.get("attempts") or {}).get(stage.value, 0) > 0:
                    return str(row["_id"])
            if ingested and len(rows) == len(ids) and not any(
                    rank(JobStatus(row["status"])) <= rank(wanted) for row in live):
                return None
            time.sleep(0.02)
        return None

    def _job_records(self) -> Collection[dict[str, Any]]:
        if self._mongo is None:
            self._mongo = MongoClient(self.stack.env["CONVERSA_MONGO_URL"],
                                      serverSelectionTimeoutMS=2000)
        return self._mongo[self.stack.env["CONVERSA_MONGO_DATABASE"]]["ingestion_jobs"]

    def close(self) -> None:
        if self._mongo is not None:
            self._mongo.close()

    def slow_vendors(self, seconds: float = 0.2, count: int = 300) -> None:
        """Make every stage take a moment, so a kill lands inside one."""
        self.stack.openai.slow_next(count, seconds)
        self.stack.pinecone.slow_next(count, seconds, path="/vectors/upsert")
        self.stack.proxy.slow_next(count, seconds / 2)

    def calm_vendors(self) -> None:
        self.stack.openai.reset()
        self.stack.pinecone.clear_faults()
        self.stack.proxy.reset()


Fault = Callable[[Run], None]


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Fault
    #: how jobs come back from this fault (a key of ``RECOVERY_BOUNDS``)
    recovery: str = "retry"
    workers: int = 1
    #: the documents of each tenant's normal workload
    per_tenant: int = 6
    updates_while_flowing: bool = False
    data_on_tmpfs: bool = False
    #: settings of this scenario's own stack (the reduced set's shared stack has none)
    env: dict[str, str] = field(default_factory=dict)
    #: a known failure, and who owns the fix (kept out of the reduced set until it lands)
    known: str = ""


# --- faults ----------------------------------------------------------------------------------

def kill_pool_processes(run: Run) -> None:
    """kill -9 of the pool processes while a job is inside each stage in turn."""
    run.slow_vendors()
    hit: list[str] = []
    back: list[float] = []
    for stage in Stage:
        waited = time.monotonic()
        _wait_pools(run.stack)  # the pool processes killed before are back
        if hit:
            back.append(time.monotonic() - waited)
        job_id = run.mid_stage(stage)
        if job_id is None:
            continue
        for worker in run.stack.workers:
            for child in worker.pool():
                _kill(child, signal.SIGKILL)
        run.struck()
        hit.append(stage.value)
        time.sleep(0.5)
    run.calm_vendors()
    run.notes.append(f"pool processes killed inside: {', '.join(hit) or 'no stage'}; new "
                     f"pool processes up after (s): {', '.join(f'{b:.1f}' for b in back)}")


def kill_whole_worker(run: Run) -> None:
    """kill -9 of a whole worker (main process and pool) mid-stage; a new one starts."""
    run.slow_vendors()
    job_id = run.mid_stage(Stage.EMBED) or run.mid_stage(Stage.EXTRACT)
    victim = run.stack.workers[0]
    os.killpg(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait()
    run.struck()
    run.notes.append(f"worker killed with {job_id} mid-stage")
    run.calm_vendors()
    run.stack.start_worker()


def rolling_sigterm(run: Run) -> None:
    """SIGTERM each worker in turn mid-stage, a replacement started before the next."""
    run.slow_vendors()
    for victim in list(run.stack.workers):
        run.mid_stage(Stage.EMBED)
        victim.proc.send_signal(signal.SIGTERM)
        run.struck()
        run.stack.start_worker()
        victim.proc.wait(timeout=60)
    run.calm_vendors()


def kill_valkey_restart_with_aof(run: Run) -> None:
    run.slow_vendors()
    run.mid_stage(Stage.EMBED)
    run.stack.kill_valkey()
    run.struck()
    time.sleep(2)
    run.stack.start_valkey()
    run.calm_vendors()


def flush_redis(run: Run) -> None:
    run.slow_vendors()
    run.mid_stage(Stage.EMBED)
    run.stack.broker().flushall()
    run.struck()
    run.calm_vendors()


def kill_mongo_restart(run: Run) -> None:
    run.slow_vendors()
    run.mid_stage(Stage.EXTRACT)
    run.stack.kill_mongo()
    run.struck()
    time.sleep(3)
    run.stack.start_mongo()
    run.calm_vendors()


def duplicate_every_stage(run: Run) -> None:
    """Every stage's message of every job, twice, at the same moment, while the jobs flow."""
    _, app = producer(run.stack.env)
    run.mid_stage(Stage.EXTRACT)
    run.struck()
    for upload in list(run.workload.ledger.uploads):
        for stage in Stage:
            spec = STAGE_QUEUES[stage]
            for _ in range(2):
                app.send_task(spec.task_name, args=(upload.job_id,), queue=spec.queue)
    app.close()


def vendor_storm(run: Run) -> None:
    """429 storms and 500s from the OpenAI and Pinecone fakes."""
    run.mid_stage(Stage.EXTRACT)
    run.stack.openai.fail_next(12, 429, retry_after=1)
    run.stack.openai.fail_next(6, 500)
    run.stack.pinecone.fail_next(10, 429)
    run.stack.pinecone.fail_next(5, 500)
    run.struck()


def object_store_faults(run: Run) -> None:
    """S3 through the fault proxy: 500s, 503s, then slow answers."""
    run.mid_stage(Stage.STORE)
    run.stack.proxy.fail_next(8, 500)
    run.stack.proxy.fail_next(8, 503)
    run.stack.proxy.slow_next(8, 3.0)
    run.struck()


def freeze_past_visibility(run: Run) -> None:
    """SIGSTOP a worker mid-stage for longer than the visibility timeout, then SIGCONT: the
    other worker runs its tasks meanwhile, and both finish the same task."""
    run.stack.openai.slow_next(6, 2.0)
    run.mid_stage(Stage.EMBED)
    victim = run.stack.workers[0]
    os.killpg(victim.proc.pid, signal.SIGSTOP)
    run.struck()
    visibility = float(run.stack.env["CONVERSA_WORKER__VISIBILITY_TIMEOUT"])
    time.sleep(visibility + 8)
    os.killpg(victim.proc.pid, signal.SIGCONT)


def hard_time_limit(run: Run) -> None:
    """A call that hangs past the stage's time limits: the OpenAI fake answers after 40 s and
    the client waits that long (this scenario's settings), so the time limits stop it."""
    run.mid_stage(Stage.RECORD)
    run.stack.openai.slow_next(2, 40.0)
    run.struck()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _limits_hit(run.stack):
        time.sleep(0.5)
    soft, hard = _limits_hit(run.stack, both=True)
    run.notes.append(f"worker logs: {soft} soft and {hard} hard time limits hit")


def _limits_hit(stack: ChaosStack, *, both: bool = False) -> Any:
    text = "".join(w.log.read_text(errors="replace") for w in stack.workers if w.log.exists())
    soft, hard = text.count("Soft time limit"), text.count("Hard time limit")
    return (soft, hard) if both else soft + hard


def poison_files(run: Run) -> None:
    """A poison file in every format, through the CLI and the API, among the good ones."""
    poisons = poison_set()
    run.mid_stage(Stage.STORE)
    tenant = run.workload.tenants[0]
    run.workload.ingest_cli(tenant, 1, extra=poisons)
    for name, data in poisons.items():
        run.workload.upload_api(run.workload.tenants[1], data=data, name=name)
    run.struck()


def disk_full(run: Run) -> None:
    """The data folder (a small tmpfs) fills up while a job is being stored and uploads
    arrive; space comes back after a few seconds, and refused uploads are sent again."""
    data = Path(run.stack.env["CONVERSA_DATA_DIR"])
    filler = data / "filler"
    run.mid_stage(Stage.STORE)
    stat = os.statvfs(data)
    with filler.open("wb") as handle, suppress(OSError):
        handle.write(b"\0" * (stat.f_bavail * stat.f_frsize))
    run.struck()
    time.sleep(6.0)
    filler.unlink()
    errors = Counter(error.split(" ", 1)[0] for error in run.workload.ledger.api_errors)
    run.notes.append(f"API answers while the disk was full: {dict(errors)}")


def update_and_delete_in_flight(run: Run) -> None:
    """Updates and deletes of documents whose jobs have not finished (issue 9's races): a new
    version of a document still on its way, several versions of one source at once, and a
    delete while the document's newest job runs."""
    run.slow_vendors(0.3, 200)
    for tenant in run.workload.tenants:
        first = run.workload.upload_api(tenant)
        assert first is not None
        run.workload.update(first)  # while the first version is still on its way
        source = f"contended-{tenant.name}"
        threads = [threading.Thread(target=run.workload.upload_api, args=(tenant,),
                                    kwargs={"source": source}) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    run.struck()
    for tenant in run.workload.tenants:
        latest = run.workload.ledger.latest_by_document(tenant.name)
        for upload in latest.values():
            if upload.source.startswith("contended-"):
                continue
            job = run.stack.services_cache().jobs.get(upload.job_id)
            if not job.status.is_terminal and job.status.value != "queued":
                run.workload.delete(tenant.name, upload.document_id)
                break
    run.calm_vendors()


def poison_set() -> dict[str, bytes]:
    pdf = make_pdf([["A page of text about harbours and tides."]])
    return {
        "broken.pdf": b"%PDF-1.4\n" + os.urandom(600),
        "encrypted.pdf": encrypt_pdf(pdf, "secret"),
        "scanned.pdf": make_pdf([["no text here"]], text_layer=False),
        "corrupt.docx": b"PK\x03\x04" + os.urandom(800),
        "bomb.docx": make_docx_bomb(6 * 1024 * 1024),
        "image.txt": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8,
        "bad-utf16.txt": b"\xff\xfe" + os.urandom(301),
        "empty.md": b"",
        "script-only.html": b"<html><head><script>var a = 1;</script></head><body></body></html>",
        "deep.json": b"[" * 5000 + b"]" * 5000,
        "bad.csv": b"a,b\n\"unterminated,1\n" * 3,
    }


SCENARIOS: list[Scenario] = [
    Scenario("kill -9 pool process (every stage)", kill_pool_processes),
    Scenario("kill -9 whole worker", kill_whole_worker, recovery="visibility"),
    Scenario("Redis FLUSHALL", flush_redis, recovery="reconciler"),
    Scenario("kill -9 Valkey, restart with AOF", kill_valkey_restart_with_aof,
             recovery="reconciler"),
    Scenario("kill -9 MongoDB server, restart", kill_mongo_restart, recovery="reconciler"),
    Scenario("duplicate deliveries of every stage", duplicate_every_stage),
    Scenario("429 and 500 from OpenAI and Pinecone", vendor_storm),
    Scenario("S3 500, 503 and slow (proxy)", object_store_faults),
    Scenario("SIGSTOP past the visibility timeout", freeze_past_visibility,
             recovery="visibility", workers=2),
    Scenario("stage past its time limit", hard_time_limit, recovery="reconciler",
             env={"CONVERSA_OPENAI__TIMEOUT_S": "60", "CONVERSA_OPENAI__MAX_RETRIES": "0",
                  "CONVERSA_OPENAI__RETRY_BUDGET_S": "60"}),
    Scenario("poison files in every format", poison_files),
    Scenario("rolling SIGTERM restart", rolling_sigterm, workers=2),
    Scenario("data disk full (tmpfs)", disk_full, data_on_tmpfs=True),
    Scenario("updates and deletes in flight", update_and_delete_in_flight,
             updates_while_flowing=True),
]
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
#: One scenario per kind of fault, each passing on main; the normal test run has these.
REDUCED = [
    "kill -9 pool process (every stage)",
    "Redis FLUSHALL",
    "kill -9 MongoDB server, restart",
    "duplicate deliveries of every stage",
    "429 and 500 from OpenAI and Pinecone",
    "S3 500, 503 and slow (proxy)",
    "poison files in every format",
    "updates and deletes in flight",
]


# --- running one ----------------------------------------------------------------------------

def run_scenario(scenario: Scenario, workdir: Path, *, per_tenant: int | None = None
                 ) -> Report:
    """``scenario`` on a stack of its own under ``workdir``."""
    started = time.monotonic()
    with _data_dir(workdir, scenario.data_on_tmpfs) as data_dir, \
            chaos_stack(workdir, workers=scenario.workers, data_dir=data_dir,
                        env=scenario.env) as stack:
        report = run_on(stack, scenario, per_tenant=per_tenant, started=started)
    report.seconds = time.monotonic() - started
    return report


def run_on(stack: ChaosStack, scenario: Scenario, *, per_tenant: int | None = None,
           started: float | None = None) -> Report:
    """``scenario`` on a running stack, with three tenants of its own; the checker looks at
    those tenants only (and at anything that belongs to no tenant), so scenarios can share a
    stack one after the other."""
    started = started if started is not None else time.monotonic()
    workload = Workload(stack, per_tenant=per_tenant or scenario.per_tenant)
    run = Run(stack, workload)
    phases = [("start", time.monotonic() - started)]

    def phase(name: str) -> None:
        phases.append((name, time.monotonic() - started - sum(t for _, t in phases)))

    try:
        workload.sign_up(3)
        stack.tenants.update(t.name for t in workload.tenants)
        phase("sign-up")
        # The fault waits for a job inside a stage while the uploads go on.
        def ingest() -> None:
            try:
                workload.ingest_all()
            finally:
                run.ingested.set()

        uploading = _Background(ingest)
        scenario.fault(run)
        phase("fault")
        uploading.join()
        phase("ingest")
        if not scenario.updates_while_flowing:
            workload.churn()
            phase("churn")
        settled = wait_all_terminal(stack, workload.ledger, SETTLE_TIMEOUT_S)
        if not settled:
            run.notes.append(f"not every job ended within {SETTLE_TIMEOUT_S:.0f} s")
        time.sleep(1.0)  # let a straggling duplicate finish before the stores are read
        phase("settle")
        mine = {t.name for t in workload.tenants}
        view = store_view(stack, mine, stack.tenants - mine)
        report = check(scenario.name, workload.ledger, view, fault_at=run.fault_at,
                       strikes=run.strikes)
        phase("check")
        again = sum(any(n > 1 for n in (job.get("attempts") or {}).values())
                    for job in view.jobs.values())
        run.notes.append(f"jobs with a stage run more than once: {again}")
        lost_acks = sum(w.log.read_text(errors="replace").count(
            "cannot be acknowledged after a connection loss") for w in stack.workers
            if w.log.exists())
        if lost_acks:
            run.notes.append(f"worker logs: {lost_acks} tasks could not be acknowledged "
                             "after the connection loss (they came back via the reconciler)")
    finally:
        workload.close()
        run.close()
        run.calm_vendors()
    if len(run.strikes) > 1:
        run.notes.append(f"the fault struck {len(run.strikes)} times over "
                         f"{run.strikes[-1] - run.strikes[0]:.1f} s")
    run.notes.append("phases (s): " + ", ".join(f"{n} {t:.1f}" for n, t in phases))
    report.recovery_bound = RECOVERY_BOUNDS[scenario.recovery]
    report.in_flight = run.in_flight
    report.notes += run.notes
    if workload.ledger.refused:
        refused = Counter(status for *_, status in workload.ledger.refused)
        report.notes.append(f"refused at the API: {dict(refused)}")
    if not report.ok:
        report.notes.append(stack.logs()[-6000:])
    report.seconds = time.monotonic() - started
    return report


def store_view(stack: ChaosStack, tenants: set[str], others: set[str]) -> StoreView:
    """The stores as they are, limited to ``tenants`` and to what belongs to no tenant of
    ``others`` (earlier scenarios on the same stack)."""
    services = stack.services()

    def ours(tenant: str) -> bool:
        return tenant in tenants or tenant not in others

    client: MongoClient[dict[str, Any]] = MongoClient(
        stack.env["CONVERSA_MONGO_URL"], tz_aware=True, serverSelectionTimeoutMS=10_000)
    try:
        database = client[stack.env["CONVERSA_MONGO_DATABASE"]]
        jobs = {str(doc["_id"]): doc for doc in database["ingestion_jobs"].find()
                if ours(str(doc.get("tenant")))}
        rows: Counter[tuple[str, str]] = Counter(
            (doc["tenant"], doc["document_id"])
            for doc in database["documents"].find({}, {"tenant": 1, "document_id": 1})
            if ours(str(doc.get("tenant"))))
    finally:
        client.close()
    pinecone = stack.pinecone
    vectors = {namespace: {vid: pinecone.metadata(namespace, vid) or {}
                           for vid in pinecone.ids(namespace)}
               for namespace in pinecone.namespaces() if ours(namespace)}
    keys = [key for key in stack.s3_keys() if ours(key.split("/", 1)[0])]
    return StoreView(
        jobs=jobs, document_rows=rows, documents=services.documents.get,
        object_keys=keys, vectors=vectors,
        search=lambda tenant, query, top_k: search(services, tenant, query, top_k))


@contextmanager
def _data_dir(workdir: Path, on_tmpfs: bool) -> Iterator[Path]:
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    if not on_tmpfs:
        yield data
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(data)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        raise RuntimeError(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def _wait_pools(stack: ChaosStack, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(
            worker.proc.poll() is None and len(worker.pool()) < worker.concurrency
            for worker in stack.workers):
        time.sleep(0.1)


class _Background:
    """A function run in a thread; ``join`` re-raises what it raised."""

    def __init__(self, target: Callable[[], None]) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(target,), daemon=True)
        self._thread.start()

    def _run(self, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:
            self._error = exc

    def join(self, timeout: float = 300) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the uploads did not finish within {timeout:.0f} s")
        if self._error is not None:
            raise self._error


def _kill(pid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, sig)


__all__ = ["BY_NAME", "REDUCED", "SCENARIOS", "Scenario", "marked_text", "run_scenario"]
