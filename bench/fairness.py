"""Benchmark: one tenant's bulk upload does not starve another tenant (fair lanes).

Starts a throwaway Valkey and MongoDB-wire server and real Celery workers (as `conversa up`
would, with the local embedder), then runs four scenarios, each on a fresh database:

- idle:  tenant B enqueues its 5 small documents on an idle pipeline;
- alone: tenant A enqueues N small documents (fair lanes on);
- fair:  A enqueues N, then B enqueues its 5 (fair lanes on);
- fifo:  the same with fair lanes off: every job in one first-in-first-out lane, the order
  the pipeline had before.

Prints B's latency (from B's first enqueue to B's last job done) on the loaded pipeline
against the idle one (the issue asks at most 3x), and A's throughput (N over the time from
A's first enqueue to A's last job done) with and without B and in FIFO order (the issue asks
a drop of at most 10%).

    .venv/bin/python bench/fairness.py [--bulk 2000] [--small 5] [--concurrency 2] [--rounds 1]
"""

import argparse
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from domain.status import JobStatus  # noqa: E402
from pipeline.bootstrap import Services  # noqa: E402
from pipeline.producer import enqueue, file_event  # noqa: E402
from tests.support.servers import mongo_server, valkey_server  # noqa: E402
from tests.support.workers import celery_worker, producer, stack_env  # noqa: E402

TENANT_A = "bulk-a"
TENANT_B = "small-b"
TENANT_WARM_UP = "warm-up"
WARM_UP = 4
SENTENCES = ("The ferry left the harbour at dawn and the gulls followed it out past the "
             "breakwater. ", "Keepers logged the tide, the wind and every passing ship. ",
             "Fog rolled in before noon and the horn sounded twice an hour. ")


@dataclass
class Outcome:
    b_latency: float | None = None
    a_throughput: float | None = None
    a_seconds: float | None = None


def write_docs(folder: Path, tenant: str, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"{tenant}-{n}.txt"
        path.write_text(f"Note {n} of {tenant}. " + SENTENCES[n % 3] * 4)
        paths.append(path)
    return paths


def wait_done(services: Services, tenant: str, count: int, timeout: float) -> list[datetime]:
    """Done times of ``tenant``'s ``count`` jobs, once every one of them has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = services.jobs.list_jobs(tenant=tenant, status=JobStatus.DONE, limit=count + 1)
        failed = services.jobs.list_jobs(tenant=tenant, status=JobStatus.FAILED, limit=1)
        if failed:
            raise SystemExit(f"a job of {tenant} failed: {failed[0].error}")
        if len(done) >= count:
            return [job.stage_times[JobStatus.DONE.value] for job in done]
        time.sleep(0.5)
    raise SystemExit(f"{tenant}'s jobs did not finish in {timeout:.0f} s")


def scenario(name: str, work: Path, broker_url: str, mongo_url: str, *, bulk: int, small: int,
             fair: bool, concurrency: int) -> Outcome:
    redis.Redis.from_url(broker_url).flushall()
    env = stack_env(broker_url, mongo_url, f"bench_{uuid.uuid4().hex[:12]}", work / name)
    env["CONVERSA_WORKER__FAIR_LANES"] = str(fair).lower()
    services, _ = producer(env)
    a_docs = write_docs(work / name / "a", TENANT_A, bulk)
    b_docs = write_docs(work / name / "b", TENANT_B, small)
    outcome = Outcome()
    warm = write_docs(work / name / "warm", TENANT_WARM_UP, WARM_UP)
    with celery_worker(env, work / name / "worker.log", concurrency=concurrency):
        # First runs in a fresh worker and database pay for set-up; measure after them.
        for path in warm:
            enqueue(services, file_event(path, TENANT_WARM_UP, 10**6))
        wait_done(services, TENANT_WARM_UP, WARM_UP, 600)
        a_started = time.time()
        for path in a_docs:
            enqueue(services, file_event(path, TENANT_A, 10**6))
        b_started = time.time()
        for path in b_docs:
            enqueue(services, file_event(path, TENANT_B, 10**6))
        if small:
            b_done = wait_done(services, TENANT_B, small, 3600)
            outcome.b_latency = max(t.timestamp() for t in b_done) - b_started
        if bulk:
            a_done = wait_done(services, TENANT_A, bulk, 7200)
            outcome.a_seconds = max(t.timestamp() for t in a_done) - a_started
            outcome.a_throughput = bulk / outcome.a_seconds
    print(f"  {name:6}: " + ", ".join(filter(None, [
        f"B's {small} jobs in {outcome.b_latency:.1f} s" if outcome.b_latency else "",
        f"A's {bulk} jobs in {outcome.a_seconds:.1f} s ({outcome.a_throughput:.2f} jobs/s)"
        if outcome.a_throughput else ""])), flush=True)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bulk", type=int, default=2000)
    parser.add_argument("--small", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat alone, fair and fifo in turn; each figure is the best "
                             "round (a shared machine's load only ever slows a run)")
    args = parser.parse_args()
    results: dict[str, list[Outcome]] = {"idle": [], "alone": [], "fair": [], "fifo": []}
    with tempfile.TemporaryDirectory(prefix="conversa-fairness-") as tmp:
        work = Path(tmp)
        with valkey_server(work / "valkey") as broker_url, \
                mongo_server(work / "mongo") as mongo_url:
            print(f"tenant A: {args.bulk} small documents, tenant B: {args.small}; "
                  f"{args.concurrency} worker processes", flush=True)
            plan = {"idle": (0, args.small, True), "alone": (args.bulk, 0, True),
                    "fair": (args.bulk, args.small, True), "fifo": (args.bulk, args.small, False)}
            for round_ in range(args.rounds):
                for name, (bulk, small, fair) in plan.items():
                    results[name].append(scenario(
                        f"{name}{round_}", work, broker_url, mongo_url, bulk=bulk, small=small,
                        fair=fair, concurrency=args.concurrency))
    b_latency = {name: min(o.b_latency for o in runs if o.b_latency)
                 for name, runs in results.items() if name != "alone"}
    a_rate = {name: max(o.a_throughput for o in runs if o.a_throughput)
              for name, runs in results.items() if name != "idle"}
    print(f"B's latency, loaded / idle: fair lanes {b_latency['fair'] / b_latency['idle']:.2f}x "
          f"(target <= 3x), one FIFO lane {b_latency['fifo'] / b_latency['idle']:.2f}x")
    print(f"A's throughput with B / without B: {a_rate['fair'] / a_rate['alone']:.3f} "
          f"(a drop of {100 * (1 - a_rate['fair'] / a_rate['alone']):.1f}%); "
          f"fair / FIFO: {a_rate['fair'] / a_rate['fifo']:.3f} "
          f"(a drop of {100 * (1 - a_rate['fair'] / a_rate['fifo']):.1f}%; target <= 10%)")


if __name__ == "__main__":
    main()
