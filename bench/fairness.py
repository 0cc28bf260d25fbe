"""Benchmark: one tenant's bulk upload does not starve another tenant (fair lanes).

For every scenario below, starts a throwaway Valkey and MongoDB-wire server and a real Celery
worker (as `conversa up` would, with the local embedder), warms it up, measures tenant B's
5 small documents on the idle pipeline (idle), then runs the scenario:

- alone: tenant A enqueues N small documents (fair lanes on);
- fair:  A enqueues N, then B enqueues its 5 (fair lanes on);
- fifo:  the same with fair lanes off: every job in one first-in-first-out lane, the order
  the pipeline had before.

The lane is chosen when a job is enqueued (pipeline/fairness.py), by the producer: the worker
is started alike for every scenario and only the producer's `worker.fair_lanes` differs.

Prints, for every run, the 1-minute load average (the mean of samples taken once a second
during the run) beside its figures, then:

- B's latency (from B's first enqueue to B's last job done) on A's backlog against B's idle
  latency on the same stack just before (the issue asks at most 3x), with lanes and with one
  FIFO lane;
- A's throughput over A's run (N over the time from A's first enqueue to A's last job done)
  without B and with B (the issue asks a drop of at most 10%);
- A's throughput in B's window (A's jobs done while B's were in flight, from B's first
  enqueue to B's last job done; in "alone", the same seconds after A's enqueue ended), and
  the pipeline's (A's and B's jobs) in that window;
- the CPU seconds each run cost the whole stack (this process, the servers, the worker), and
  A's jobs per CPU-second: on a machine others share, wall-clock rates move with their load,
  CPU per job much less.

Rounds alternate the order of "alone" and "fair" (alone, fair / fair, alone / ...), so a load
that rises or falls during the benchmark weighs on both alike; each round's pair gives one
ratio and the summary is their median.

    .venv/bin/python bench/fairness.py [--bulk 2000] [--small 5] [--rounds 2]
                                       [--fifo-rounds 1] [--concurrency 2]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pymongo import MongoClient  # noqa: E402
from pymongo.collection import Collection  # noqa: E402

from adapters.mongodb.repositories import JOBS_COLLECTION  # noqa: E402
from domain.status import JobStatus  # noqa: E402
from pipeline.bootstrap import Services  # noqa: E402
from pipeline.producer import enqueue, file_event  # noqa: E402
from tests.support.servers import mongo_server, valkey_server  # noqa: E402
from tests.support.workers import celery_worker, producer, stack_env  # noqa: E402

DATABASE = "bench_fairness"
WARM_UP = 6
#: How often the benchmark counts a tenant's done jobs: B's (few) every second, A's every few
#: seconds; the figures come from the jobs' own done times, not from these polls.
POLL_B_SECONDS = 1.0
POLL_A_SECONDS = 3.0
TICK = os.sysconf("SC_CLK_TCK")
SENTENCES = ("The ferry left the harbour at dawn and the gulls followed it out past the "
             "breakwater. ", "Keepers logged the tide, the wind and every passing ship. ",
             "Fog rolled in before noon and the horn sounded twice an hour. ")


@dataclass
class Run:
    scenario: str
    round: int
    #: When A's first enqueue began, and when B's first began (in "alone": when A's last
    #: enqueue ended, where B would have begun). Unix seconds.
    a_started: float = 0.0
    b_started: float = 0.0
    a_done: list[float] = field(default_factory=list)
    b_done: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    #: CPU seconds the run cost this process and every process it started (the servers, the
    #: worker and its pool), by part.
    cpu: dict[str, float] = field(default_factory=dict)
    #: B's latency on the same stack just before, idle.
    b_idle: float = 0.0

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu.values())

    @property
    def load(self) -> float:
        return statistics.fmean(self.loads) if self.loads else os.getloadavg()[0]

    @property
    def a_seconds(self) -> float:
        return max(self.a_done) - self.a_started

    @property
    def a_rate(self) -> float:
        return len(self.a_done) / self.a_seconds

    @property
    def b_latency(self) -> float:
        return max(self.b_done) - self.b_started

    def rate_in_window(self, seconds: float, *, with_b: bool = False) -> float:
        """Jobs/s of A (and B's too, ``with_b``) done from ``b_started`` for ``seconds``."""
        end = self.b_started + seconds
        done = self.a_done + (self.b_done if with_b else [])
        return sum(1 for t in done if self.b_started < t <= end) / seconds


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user and system) so far of this process and its descendants, by part:
    producer (this process), db, broker, worker. A pool child that exited and was waited for
    counts in its parent's children's times."""
    parts: dict[str, float] = {}
    pending = [os.getpid()]
    while pending:
        pid = pending.pop()
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:  # ended meanwhile
            continue
        ticks = sum(int(value) for value in stat.rsplit(")", 1)[1].split()[11:15])
        part = ("producer" if pid == os.getpid() else "db" if b"secantus" in argv
                else "broker" if b"valkey" in argv else "worker")
        parts[part] = parts.get(part, 0.0) + ticks / TICK
        pending.extend(int(child) for child in children)
    return parts


class Bench:
    def __init__(self, work: Path, env: dict[str, str], mongo_url: str) -> None:
        self.work = work
        self.fair, _ = producer({**env, "CONVERSA_WORKER__FAIR_LANES": "true"})
        self.fifo, _ = producer({**env, "CONVERSA_WORKER__FAIR_LANES": "false"})
        self._jobs: Collection[dict[str, Any]] = MongoClient(mongo_url)[DATABASE][JOBS_COLLECTION]
        self._loads: list[float] = []

    def docs(self, tenant: str, count: int) -> list[Path]:
        folder = self.work / "docs" / tenant
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for n in range(count):
            path = folder / f"{n}.txt"
            # The tenant's name in the text: no two scenarios share a chunk or an embedding.
            path.write_text(f"Note {n} of {tenant}. " + SENTENCES[n % 3] * 4)
            paths.append(path)
        return paths

    def enqueue_all(self, services: Services, tenant: str, paths: Sequence[Path]) -> None:
        for path in paths:
            enqueue(services, file_event(path, tenant, 10**6))

    def wait_done(self, tenant: str, count: int, timeout: float, poll: float) -> list[float]:
        """Done times of ``tenant``'s ``count`` jobs once all are done; one count query a
        second meanwhile (listing thousands of records that often would load the machine)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._loads.append(os.getloadavg()[0])
            if self._jobs.count_documents({"tenant": tenant, "status": "failed"}, limit=1):
                failed = self.fair.jobs.list_jobs(tenant=tenant, status=JobStatus.FAILED,
                                                  limit=1)
                raise SystemExit(f"a job of {tenant} failed: {failed[0].error}")
            if self._jobs.count_documents({"tenant": tenant, "status": "done"}) >= count:
                jobs = self.fair.jobs.list_jobs(tenant=tenant, status=JobStatus.DONE,
                                                limit=count + 1)
                return [job.stage_times[JobStatus.DONE.value].timestamp() for job in jobs]
            time.sleep(poll)
        raise SystemExit(f"{tenant}'s jobs did not finish in {timeout:.0f} s")

    def run(self, scenario: str, round_: int, *, bulk: int, small: int) -> Run:
        services = self.fifo if scenario == "fifo" else self.fair
        run = Run(scenario, round_)
        tenant_a, tenant_b = f"a-{scenario}{round_}", f"b-{scenario}{round_}"
        a_docs = self.docs(tenant_a, bulk if scenario != "idle" else 0)
        b_docs = self.docs(tenant_b, small if scenario != "alone" else 0)
        self._loads = [os.getloadavg()[0]]
        cpu_before = cpu_seconds()
        run.a_started = time.time()
        self.enqueue_all(services, tenant_a, a_docs)
        run.b_started = time.time()
        self.enqueue_all(services, tenant_b, b_docs)
        if b_docs:
            run.b_done = self.wait_done(tenant_b, len(b_docs), 7200, POLL_B_SECONDS)
        if a_docs:
            run.a_done = self.wait_done(tenant_a, len(a_docs), 14400, POLL_A_SECONDS)
        run.loads = self._loads
        run.cpu = {part: seconds - cpu_before.get(part, 0.0)
                   for part, seconds in cpu_seconds().items()}
        figures = [f"round {round_} {scenario:5}:"]
        if run.b_done:
            figures.append(f"B's {len(b_docs)} jobs in {run.b_latency:6.1f} s,")
        if run.a_done:
            figures.append(f"A's {len(a_docs)} jobs in {run.a_seconds:6.1f} s "
                           f"({run.a_rate:.3f} jobs/s),")
        figures.append(f"stack CPU {run.cpu_total:.0f} s ("
                       + ", ".join(f"{part} {seconds:.0f}" for part, seconds
                                   in sorted(run.cpu.items())) + f"), load {run.load:.1f}")
        print("  " + " ".join(figures), flush=True)
        return run


def ratio_line(label: str, pairs: Sequence[tuple[float, float]], unit: str) -> float:
    """Prints each pair (without B, with B) and the drop; returns the median ratio."""
    ratios = [with_b / without for without, with_b in pairs]
    rounds = "; ".join(f"{without:.3f} -> {with_b:.3f}" for without, with_b in pairs)
    median = statistics.median(ratios)
    print(f"{label}: {rounds} {unit}; with B / without B {median:.3f} "
          f"(a drop of {100 * (1 - median):.1f}%)")
    return median


def summary(runs: list[Run]) -> None:
    by = {(run.scenario, run.round): run for run in runs}
    rounds = sorted({run.round for run in runs if run.scenario == "fair"})
    fifo = [run for run in runs if run.scenario == "fifo"]
    for label, loaded in (("with lanes", [by["fair", r] for r in rounds]),
                          ("one FIFO lane", fifo)):
        if loaded:
            ratios = [run.b_latency / run.b_idle for run in loaded]
            print(f"B's latency on A's backlog / idle on the same stack, {label}: "
                  + "; ".join(f"{run.b_latency:.1f} s / {run.b_idle:.1f} s" for run in loaded)
                  + f" = {statistics.median(ratios):.2f}x"
                  + (" (target <= 3x)" if label == "with lanes" else ""))
    ratio_line("A's throughput over its run", [
        (by["alone", r].a_rate, by["fair", r].a_rate) for r in rounds], "jobs/s")
    windows = [by["fair", r].b_latency for r in rounds]
    ratio_line("A's jobs per CPU-second of the stack (less sensitive to the machine's load)", [
        (len(by["alone", r].a_done) / by["alone", r].cpu_total,
         len(by["fair", r].a_done) / by["fair", r].cpu_total) for r in rounds], "jobs/CPU-s")
    ratio_line("A's throughput in B's window", [
        (by["alone", r].rate_in_window(w), by["fair", r].rate_in_window(w))
        for r, w in zip(rounds, windows, strict=True)], "jobs/s")
    ratio_line("the pipeline's (A's + B's) in B's window", [
        (by["alone", r].rate_in_window(w), by["fair", r].rate_in_window(w, with_b=True))
        for r, w in zip(rounds, windows, strict=True)], "jobs/s")
    for run in fifo:
        fair_rate = statistics.median(by["fair", r].a_rate for r in rounds)
        print(f"A's throughput with B, lanes / one FIFO lane: {fair_rate:.3f} / "
              f"{run.a_rate:.3f} = {fair_rate / run.a_rate:.3f}")


@contextmanager
def stack(work: Path, concurrency: int) -> Iterator[Bench]:
    """A fresh Valkey, SecantusDB and worker, warmed up. Every scenario gets its own: on a
    database that already holds an earlier scenario's records a job costs SecantusDB more
    CPU, so a shared one would slow whichever scenario runs later."""
    with valkey_server(work / "valkey") as broker_url, mongo_server(work / "mongo") as mongo_url:
        env = stack_env(broker_url, mongo_url, DATABASE, work / "data")
        bench = Bench(work, env, mongo_url)
        with celery_worker(env, work / "worker.log", concurrency=concurrency):
            # The first jobs of a fresh worker and database pay for set-up (the model's
            # load, the indexes): measure after them.
            bench.enqueue_all(bench.fair, "warm-up", bench.docs("warm-up", WARM_UP))
            bench.wait_done("warm-up", WARM_UP, 600, POLL_B_SECONDS)
            yield bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bulk", type=int, default=2000, help="tenant A's documents")
    parser.add_argument("--small", type=int, default=5, help="tenant B's documents")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alone and fair runs, in alternating order")
    parser.add_argument("--fifo-rounds", type=int, default=1,
                        help="fifo runs, after the rounds (0: none)")
    args = parser.parse_args()
    print(f"tenant A: {args.bulk} small documents, tenant B: {args.small}; a worker of "
          f"{args.concurrency} processes; load {os.getloadavg()[0]:.1f}", flush=True)
    plan = [scenario for round_ in range(args.rounds)
            for scenario in (("alone", "fair") if round_ % 2 == 0 else ("fair", "alone"))]
    plan += ["fifo"] * args.fifo_rounds
    runs: list[Run] = []
    seen: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="conversa-fairness-") as tmp:
        for scenario in plan:
            round_ = seen[scenario] = seen.get(scenario, -1) + 1
            with stack(Path(tmp) / f"{scenario}{round_}", args.concurrency) as bench:
                idle = bench.run("idle", round_, bulk=0, small=args.small)
                runs += [idle, bench.run(scenario, round_, bulk=args.bulk, small=args.small)]
                runs[-1].b_idle = idle.b_latency
    if args.rounds:
        summary(runs)


if __name__ == "__main__":
    main()
