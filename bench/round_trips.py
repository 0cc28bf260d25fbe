"""Benchmark: the MongoDB commands and Redis calls each job costs, by command and collection.

Starts a throwaway Valkey broker and SecantusDB, and one Celery worker inside this process
(thread pool, ``--concurrency`` threads) with the real adapters of the local stack (job and
document records in SecantusDB, objects on disk, LanceDB, YAKE keywords, the tenant routes),
except the embedder: a hash embedder by default (``--embedder local`` for the real model),
since the model makes no round trips. Enqueues ``--documents`` small documents
(``bench/small_documents.py``) through the producer, waits for them with the CLI's poller
(``pipeline.waiting``), and prints, per phase (enqueue, stages, wait), every MongoDB command
by name and collection (pymongo's command monitoring: count, per job, milliseconds in all
and per call, as the client saw them) and every Redis command (the server's
``INFO commandstats``, reset before the run: calls per job and server microseconds).

With ``--prefill N`` the tenant already has N finished jobs and documents (written directly),
so a query that scans instead of using an index shows up as a slower call.

    .venv/bin/python bench/round_trips.py [--documents 50] [--concurrency 2] [--prefill 0]
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from pymongo import monitoring

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import mongo_server, valkey_server  # noqa: E402

BENCH_TENANT = "bench"
PHASE = {"name": "setup"}


class Commands(monitoring.CommandListener):
    """Counts and times every command by (phase, worker or main thread, command, collection)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[int, tuple[str, str]] = {}
        self.figures: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0.0])

    def started(self, event: monitoring.CommandStartedEvent) -> None:  # type: ignore[override]
        command = event.command_name
        target = event.command.get(command)
        collection = target if isinstance(target, str) else "-"
        with self.lock:
            self.pending[event.request_id] = (command, collection)

    def _end(self, event: Any) -> None:
        with self.lock:
            name = self.pending.pop(event.request_id, None)
            if name is None or name[0] in ("hello", "ismaster", "isMaster", "endSessions"):
                return
            main = threading.current_thread() is threading.main_thread()
            figure = self.figures[(PHASE["name"] if main else "stages", *name)]
            figure[0] += 1
            figure[1] += event.duration_micros / 1000

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:  # type: ignore[override]
        self._end(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:  # type: ignore[override]
        self._end(event)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--prefill", type=int, default=0)
    parser.add_argument("--embedder", choices=("hash", "local"), default="hash")
    args = parser.parse_args()
    listener = Commands()
    monitoring.register(listener)  # before any client is built
    with tempfile.TemporaryDirectory(prefix="conversa-trips-") as tmp_name:
        tmp = Path(tmp_name)
        with valkey_server(tmp / "valkey") as broker_url, mongo_server(tmp / "mongo") as url:
            for key in [k for k in os.environ if k.startswith("CONVERSA_")]:
                del os.environ[key]
            os.environ.update({"CONVERSA_BROKER_URL": broker_url, "CONVERSA_MONGO_URL": url,
                               "CONVERSA_MONGO_DATABASE": "bench",
                               "CONVERSA_DATA_DIR": str(tmp / "data")})
            run(tmp, args, listener, broker_url)


def server_cpu(marker: str) -> float:
    """User + system CPU seconds of the processes whose command line names ``marker``."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def prefill(services: Any, count: int) -> None:
    """``count`` finished jobs and served documents of the tenant, written directly."""
    from domain.documents import Document
    from domain.job import IngestionJob, utcnow
    from domain.status import JobStatus

    now = utcnow()
    for number in range(count):
        job = IngestionJob(job_id=f"old-{number:06d}", tenant=BENCH_TENANT,
                           document_id=f"old-doc-{number:06d}", source=f"old/{number}.txt",
                           source_name=f"{number}.txt", source_uri=f"file:///old/{number}",
                           status=JobStatus.DONE, created_at=now, updated_at=now)
        services.jobs.create(job)
        services.documents.put(Document(document_id=job.document_id, tenant=BENCH_TENANT,
                                        source=job.source, source_name=job.source_name,
                                        created_at=now, updated_at=now), None)


def run(tmp: Path, args: argparse.Namespace, listener: Commands, broker_url: str) -> None:
    import redis
    from celery.contrib.testing.worker import start_worker

    from adapters.celery.dispatcher import CeleryDispatcher
    from adapters.celery.topology import STAGE_QUEUES
    from adapters.memory.fakes import HashEmbedder
    from bench.small_documents import write_corpus
    from domain.status import STAGES, JobStatus
    from pipeline.bootstrap import bootstrap
    from pipeline.producer import enqueue, file_event
    from pipeline.settings import load_settings
    from pipeline.waiting import wait_for_jobs
    from workers import context
    from workers.app import app

    adapters: dict[str, Any] = {}
    if args.embedder == "hash":
        adapters["embedder"] = HashEmbedder(dimension=384)
    services = bootstrap(load_settings(), dispatcher=CeleryDispatcher(app), **adapters)
    context.install(services)
    broker = redis.Redis.from_url(broker_url)
    if args.prefill:
        prefill(services, args.prefill)

    def one_round(name: str, documents: int, seed: int) -> float:
        folder = tmp / name
        folder.mkdir()
        write_corpus(folder, documents, seed=seed)
        events = [file_event(path, BENCH_TENANT, 10**9, source=f"{name}/{path.name}")
                  for path in sorted(folder.iterdir())]
        started = time.perf_counter()
        PHASE["name"] = "enqueue"
        ids = [enqueue(services, event).job_id for event in events]
        PHASE["name"] = "wait"
        jobs = wait_for_jobs(services, ids, timeout=1800)
        seconds = time.perf_counter() - started
        failed = [job for job in jobs if job.status is not JobStatus.DONE]
        if failed:
            raise SystemExit(f"{len(failed)} jobs did not finish: {failed[0].error}")
        return seconds

    queues = ",".join(STAGE_QUEUES[stage].queue for stage in STAGES)
    with start_worker(app, pool="threads", concurrency=args.concurrency, queues=queues,
                      perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30):
        one_round("warm", 3, seed=99)
        with listener.lock:
            listener.figures.clear()
        broker.config_resetstat()
        load = os.getloadavg()[0]
        marker = str(tmp / "mongo")
        cpu_before, own_before = server_cpu(marker), time.process_time()
        seconds = one_round("docs", args.documents, seed=1)
        cpu = server_cpu(marker) - cpu_before
        own = time.process_time() - own_before
        redis_stats = broker.info("commandstats")
    report(listener, redis_stats, args, seconds, load)
    print(f"CPU seconds: MongoDB-wire server {cpu:.1f} ({cpu / args.documents:.3f} per job), "
          f"this process (producer, poller, worker threads) {own:.1f} "
          f"({own / args.documents:.3f} per job)")


def report(listener: Commands, redis_stats: dict[str, Any], args: argparse.Namespace,
           seconds: float, load: float) -> None:
    jobs = args.documents
    print(f"round_trips: {jobs} small documents, {args.concurrency} worker threads, "
          f"embedder {args.embedder}, prefill {args.prefill}; {seconds:.1f} s, "
          f"{jobs / seconds:.1f} jobs/s (load {load:.1f})")
    print("MongoDB commands (enqueue and wait: the main thread; stages: the worker's threads)")
    rows = sorted(listener.figures.items(), key=lambda item: -item[1][1])
    total_count = sum(int(f[0]) for f in listener.figures.values())
    total_ms = sum(f[1] for f in listener.figures.values())
    print(f"{'phase':<8} {'command':<18} {'collection':<16} {'calls':>6} {'per job':>8} "
          f"{'ms':>8} {'ms/call':>8}")
    for (phase, command, collection), (count, ms) in rows:
        print(f"{phase:<8} {command:<18} {collection:<16} {int(count):>6} {count / jobs:>8.2f} "
              f"{ms:>8.0f} {ms / count:>8.2f}")
    print(f"{'all':<8} {'':<18} {'':<16} {total_count:>6} {total_count / jobs:>8.2f} "
          f"{total_ms:>8.0f}")
    print("Redis commands (server side, every client: broker, events, metrics)")
    redis_rows = sorted(((name.removeprefix("cmdstat_"), stat) for name, stat
                         in redis_stats.items()), key=lambda item: -int(item[1]["calls"]))
    calls = sum(int(stat["calls"]) for _, stat in redis_rows)
    for name, stat in redis_rows:
        print(f"{name:<18} {int(stat['calls']):>6} {int(stat['calls']) / jobs:>8.2f} per job "
              f"{int(stat['usec']) / 1000:>8.1f} ms")
    print(f"{'all':<18} {calls:>6} {calls / jobs:>8.2f} per job")


if __name__ == "__main__":
    main()
