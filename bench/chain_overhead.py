"""Benchmark: the five-stage chain with instant adapters against a bare chain of five no-ops.

Starts a throwaway Valkey broker and one Celery worker inside this process (thread pool,
``--concurrency`` threads), consuming the five stage queues. The pipeline side enqueues
``--jobs`` small documents through the producer with in-memory adapters (object store, job
and document repositories, a hash embedder, frequency keywords, a vector index in memory),
so what is left is the stages' own work and their hops through the broker. The bare side
sends, on the same broker, queues and priorities, a chain of five tasks that do nothing.
Both run twice, interleaved, in one run; prints jobs/s of each and their ratio.

    .venv/bin/python bench/chain_overhead.py [--jobs 300] [--concurrency 2]
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import valkey_server  # noqa: E402

BENCH_TENANT = "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conversa-chain-") as tmp_name:
        tmp = Path(tmp_name)
        with valkey_server(tmp / "valkey") as broker_url:
            os.environ.update({"CONVERSA_BROKER_URL": broker_url,
                               "CONVERSA_DATA_DIR": str(tmp / "data")})
            run(tmp, args.jobs, args.concurrency)


def run(tmp: Path, jobs: int, concurrency: int) -> None:
    from celery import chain
    from celery.contrib.testing.worker import start_worker

    from adapters.celery.dispatcher import CeleryDispatcher
    from adapters.celery.topology import LANE_PRIORITIES, STAGE_QUEUES
    from adapters.memory.fakes import (
        FrequencyKeywords,
        HashEmbedder,
        MemoryDocumentRepository,
        MemoryJobRepository,
        MemoryObjectStore,
        MemoryVectorIndex,
    )
    from domain.status import STAGES
    from pipeline.bootstrap import bootstrap
    from pipeline.producer import enqueue, file_event
    from pipeline.settings import load_settings
    from workers import context
    from workers.app import app

    finished: set[str] = set()
    guard = threading.Lock()

    def noop(_: str) -> None:
        return None

    def last(chain_id: str) -> None:
        with guard:
            finished.add(chain_id)

    names = [f"bench.noop.{stage.value}" for stage in STAGES]
    for name in names[:-1]:
        app.task(name=name)(noop)
    app.task(name=names[-1])(last)

    embedder = HashEmbedder(dimension=384)
    services = bootstrap(
        load_settings(), objects=MemoryObjectStore(), jobs=MemoryJobRepository(),
        documents=MemoryDocumentRepository(), embedder=embedder, keywords=FrequencyKeywords(),
        vectors=MemoryVectorIndex(), dispatcher=CeleryDispatcher(app))
    context.install(services)

    from bench.small_documents import write_corpus

    def pipeline_round(round_: int) -> float:
        folder = tmp / f"docs{round_}"
        folder.mkdir()
        write_corpus(folder, jobs, seed=round_)
        files = sorted(folder.iterdir())
        events = [file_event(path, BENCH_TENANT, 10**9, source=f"r{round_}/{path.name}")
                  for path in files]
        started = time.perf_counter()
        ids = [enqueue(services, event).job_id for event in events]
        while True:
            states = services.jobs.get_many(ids)
            if all(job.status.is_terminal for job in states):
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        failed = [job for job in states if job.error]
        if failed:
            raise SystemExit(f"{len(failed)} jobs failed: {failed[0].error}")
        return seconds

    def bare_round(round_: int) -> float:
        priority = LANE_PRIORITIES[0]
        started = time.perf_counter()
        ids = [f"bare-{round_}-{n}" for n in range(jobs)]
        for chain_id in ids:
            chain(*[app.signature(name, args=(chain_id,), immutable=True,
                                  queue=STAGE_QUEUES[stage].queue, priority=priority)
                    for name, stage in zip(names, STAGES, strict=True)]).apply_async()
        while True:
            with guard:
                if finished.issuperset(ids):
                    break
            time.sleep(0.02)
        return time.perf_counter() - started

    queues = ",".join(STAGE_QUEUES[stage].queue for stage in STAGES)
    # A thread pool: a process pool (and the solo pool) would build its own adapters.
    with start_worker(app, pool="threads", concurrency=concurrency, queues=queues,
                      perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30):
        pipeline_round(99)  # warm up: imports, first connections
        results: dict[str, list[float]] = {"pipeline": [], "bare": []}
        for round_ in range(2):
            load = os.getloadavg()[0]
            results["bare"].append(bare_round(round_))
            results["pipeline"].append(pipeline_round(round_))
            print(f"round {round_ + 1}: bare {jobs / results['bare'][-1]:6.1f} jobs/s, "
                  f"five-stage pipeline {jobs / results['pipeline'][-1]:6.1f} jobs/s  "
                  f"(load {load:.1f})", flush=True)
    bare = jobs * len(results["bare"]) / sum(results["bare"])
    pipeline = jobs * len(results["pipeline"]) / sum(results["pipeline"])
    print(f"chain_overhead: {jobs} jobs per round, 1 in-process worker x {concurrency} "
          "threads")
    print(f"bare chain of five no-op tasks  {bare:7.1f} jobs/s")
    print(f"five-stage chain, memory fakes  {pipeline:7.1f} jobs/s")
    print(f"ratio pipeline / bare           {pipeline / bare:7.2f}")


if __name__ == "__main__":
    main()
