"""Benchmark: does the pipeline stay flat as one tenant's work grows?

Writes ``--documents`` small documents (one or two paragraphs each, from
``bench/small_documents.py``), starts a local stack (``conversa up``) and ingests them into one
tenant through the real CLI, ``--batch`` at a time (``conversa ingest BATCH_FOLDER --wait``),
after ``--warmup`` documents of their own that are not counted (the first LanceDB table, the
first calls of each stage would otherwise slow the first batch and flatter the ratio).
After each batch it prints the batch's jobs/s and model tokens/s (the embedder's own count,
from the workers' metrics in Redis), the resident memory of each pool process (and its
anonymous part, from ``/proc/PID/smaps_rollup``), the MongoDB-wire server's memory and CPU,
the index stage's mean seconds as the workers recorded it, and the load average. Then the
ratio of the last batch to the first (the goal: at least 0.8).

The MongoDB-wire server's own profiler (the ``profile`` command, ``system.profile``) records
every command slower than ``--slowms`` from every process of the stack; after each batch the
slowest are printed by shape (operation, collection, filter fields). At the end every query
shape the pipeline sends is run through ``explain`` on the grown collections (which index
answers it, or a collection scan), and the vector index's calls are timed at its final size
in this process.

    .venv/bin/python bench/growth.py [--documents 2000] [--batch 400] [--slowms 50]
    .venv/bin/python bench/growth.py --folder CORPUS --batch 40   # a folder's *.txt instead

The issue's full run, 20,000 documents in batches of 2,000, is ``--documents 20000 --batch 2000``.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpus import (  # noqa: E402
    conversa,
    cpu_seconds,
    memory_mb,
    proc_mb,
    stack_processes,
    timed_cli,
)
from bench.small_documents import write_corpus  # noqa: E402

DATABASE = "conversa"


@dataclass
class Batch:
    number: int
    documents: int
    seconds: float
    tokens: int
    load: float
    rss: dict[str, tuple[float, float, float]]  # pool process -> (RSS, anonymous, peak) MB
    mongo_rss: float
    mongo_cpu: float
    index_mean: float
    slowest: list[tuple[str, int, float, int]]  # (shape, count, mean ms, max ms)

    @property
    def jobs_per_second(self) -> float:
        return self.documents / self.seconds

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


def rollup_mb(pid: int) -> tuple[float, float]:
    """(resident, anonymous) MB of one process."""
    rss, anonymous = proc_mb(pid, "smaps_rollup", "Rss", "Anonymous")
    return rss, anonymous


def embedder_tokens(client: Any) -> int:
    from adapters.redis.worker_metrics import EMBEDDER_KEY

    return int(client.hget(EMBEDDER_KEY, "tokens") or 0)


def index_stage(client: Any) -> tuple[float, int]:
    """(seconds summed, tasks) of the index stage so far, as the pool processes recorded."""
    from adapters.redis.worker_metrics import DURATION_KEY, SEPARATOR

    total = float(client.hget(DURATION_KEY, f"index{SEPARATOR}sum") or 0)
    count = int(client.hget(DURATION_KEY, f"index{SEPARATOR}count") or 0)
    return total, count


def shape(entry: dict[str, Any]) -> str:
    """A profiled command by operation, collection and the fields it filters on."""
    command = entry.get("command") or {}
    op = str(entry.get("op"))
    name = next(iter(command), op)
    where: Any = None
    if name in ("find", "count", "distinct", "delete"):
        where = command.get("filter") or command.get("query")
        if name == "delete":
            where = (command.get("deletes") or [{}])[0].get("q")
    elif name in ("findAndModify", "findandmodify"):
        where = command.get("query")
    elif name == "update":
        where = (command.get("updates") or [{}])[0].get("q")
    elif name == "aggregate":
        first = (command.get("pipeline") or [{}])[0]
        where = first.get("$match")
    fields = sorted(where) if isinstance(where, dict) else []
    sort = command.get("sort")
    text = f"{name} {str(entry.get('ns', '')).split('.', 1)[-1]}"
    if fields:
        text += " {" + ", ".join(fields) + "}"
    if isinstance(sort, dict) and sort:
        text += " sort " + ",".join(sort)
    return text


def slowest_commands(db: Any, since: Any, top: int) -> list[tuple[str, int, float, int]]:
    by_shape: dict[str, list[int]] = defaultdict(list)
    for entry in db["system.profile"].find({"ts": {"$gt": since}}):
        by_shape[shape(entry)].append(int(entry.get("millis") or 0))
    rows = [(name, len(ms), statistics.fmean(ms), max(ms)) for name, ms in by_shape.items()]
    return sorted(rows, key=lambda row: -row[3])[:top]


def plan_of(explained: dict[str, Any]) -> str:
    stage = explained.get("queryPlanner", {}).get("winningPlan", {})
    names = []
    while stage:
        label = str(stage.get("stage"))
        if "indexName" in stage:
            label += f"({stage['indexName']})"
        names.append(label)
        stage = stage.get("inputStage") or (stage.get("inputStages") or [None])[0]
    return " <- ".join(names) or json.dumps(explained)[:80]


def query_shapes(db: Any, tenant: str) -> list[tuple[str, Any]]:
    """The read queries of adapters/mongodb/*.py, with values taken from the grown data."""
    from datetime import UTC, datetime

    from pymongo import ASCENDING, DESCENDING

    from adapters.mongodb.repositories import _NON_TERMINAL

    jobs, documents = db["ingestion_jobs"], db["documents"]
    job = jobs.find_one({"tenant": tenant}) or {}
    document = documents.find_one({"tenant": tenant}) or {}
    job_id, document_id = job.get("_id", ""), document.get("document_id", "")
    sha = (document.get("served") or {}).get("sha256", "")
    created = job.get("created_at") or datetime.now(UTC)
    newest = [("created_at", DESCENDING), ("_id", DESCENDING)]
    return [
        ("jobs.get / transition {_id}", jobs.find({"_id": job_id})),
        ("jobs.get_many {_id: $in}", jobs.find({"_id": {"$in": [job_id]}})),
        ("jobs.list_jobs {tenant} newest 100", jobs.find({"tenant": tenant}).sort(newest)
         .limit(100)),
        ("jobs.list_jobs {tenant, status}", jobs.find({"tenant": tenant, "status": "done"})
         .sort(newest).limit(100)),
        ("jobs.list_jobs_page {tenant} after", jobs.find(
            {"tenant": tenant, "$or": [{"created_at": {"$lt": created}},
                                       {"created_at": created, "_id": {"$lt": job_id}}]})
         .sort(newest).limit(50)),
        ("jobs.count_in_flight {status $in, tenant}", jobs.find(
            {"status": {"$in": _NON_TERMINAL}, "tenant": tenant}, {"_id": True}).limit(33)),
        ("jobs.list_stale {status $in, updated_at <}", jobs.find(
            {"status": {"$in": _NON_TERMINAL}, "updated_at": {"$lt": datetime.now(UTC)}})
         .sort([("updated_at", ASCENDING), ("_id", ASCENDING)]).limit(500)),
        ("documents.get {tenant, document_id}", documents.find(
            {"tenant": tenant, "document_id": document_id})),
        # using_content asks its two indexes in turn (an $or is a collection scan there).
        ("documents.using_content {tenant, served.sha256}", documents.find(
            {"tenant": tenant, "served.sha256": sha})),
        ("documents.using_content {tenant, claims.sha256}", documents.find(
            {"tenant": tenant, "claims.sha256": sha})),
        ("documents.documents_under {tenant, source range}", documents.find(
            {"tenant": tenant, "source": {"$gte": "", "$lt": "\U0010ffff"}})
         .sort("source", ASCENDING).limit(100)),
        ("documents.list_documents_page {tenant}", documents.find({"tenant": tenant})
         .sort("document_id", ASCENDING).limit(100)),
        ("reindex_runs {tenant} newest", db["reindex_runs"].find({"tenant": tenant})
         .sort("started_at", DESCENDING).limit(1)),
    ]


@dataclass
class Audit:
    jobs: int
    documents: int
    load: float
    rows: list[tuple[str, float, str]]  # (query, ms, plan)


def audit(db: Any, tenant: str, repeat: int = 5) -> Audit:
    """Each query shape's plan and its mean time on the collections as they are now."""
    rows = []
    for name, cursor in query_shapes(db, tenant):
        plan = plan_of(cursor.clone().explain())
        started = time.perf_counter()
        for _ in range(repeat):
            list(cursor.clone())
        rows.append((name, (time.perf_counter() - started) / repeat * 1000, plan))
    return Audit(jobs=db["ingestion_jobs"].estimated_document_count(),
                 documents=db["documents"].estimated_document_count(),
                 load=os.getloadavg()[0], rows=rows)


def print_audit(first: Audit, last: Audit) -> None:
    print(f"\nthe pipeline's queries after the first batch and after the last: "
          f"{first.jobs} and {last.jobs} jobs, {first.documents} and {last.documents} "
          f"documents (load {first.load:4.1f}, {last.load:4.1f})")
    print(f"{'query':<50} {'ms first':>9} {'ms last':>9}  plan (last)")
    for (name, ms_first, _), (_, ms_last, plan) in zip(first.rows, last.rows, strict=True):
        print(f"{name:<50} {ms_first:9.1f} {ms_last:9.1f}  {plan}")


def time_vector_index(data_dir: Path, tenant: str, repeat: int = 20) -> None:
    import numpy as np

    from pipeline.bootstrap import bootstrap
    from pipeline.settings import Settings

    services = bootstrap(Settings(data_dir=data_dir))
    vectors = services.vectors
    rng = np.random.default_rng(7)
    dimension = vectors.dimension
    timings: dict[str, list[float]] = defaultdict(list)
    rows = vectors.count(tenant)
    for _ in range(repeat):
        query = rng.standard_normal(dimension)
        query = (query / np.linalg.norm(query)).tolist()
        for name, call in (("semantic_search top 10", lambda q=query: vectors.semantic_search(
                               tenant, q, 10)),
                           ("count", lambda: vectors.count(tenant))):
            started = time.perf_counter()
            call()
            timings[name].append((time.perf_counter() - started) * 1000)
    print(f"\nvector index calls at {rows} vectors (this process, {repeat} each)   load "
          f"{os.getloadavg()[0]:4.1f}")
    for name, ms in timings.items():
        ms.sort()
        print(f"{name:<26} p50 {statistics.median(ms):7.1f} ms  max {ms[-1]:7.1f} ms")


def print_batch(batch: Batch) -> None:
    rss = "  ".join(f"{name} {now:4.0f} ({anon:4.0f}, peak {peak:4.0f})"
                    for name, (now, anon, peak) in sorted(batch.rss.items()))
    print(f"batch {batch.number:3d}  {batch.documents:5d} docs  {batch.seconds:7.1f} s  "
          f"{batch.jobs_per_second:5.2f} jobs/s  {batch.tokens_per_second:6.0f} tokens/s  "
          f"index stage {batch.index_mean * 1000:5.0f} ms/job  RSS MB (anon, peak) {rss}  "
          f"mongodb {batch.mongo_rss:4.0f} MB {batch.mongo_cpu:5.1f} CPU-s  "
          f"load {batch.load:4.1f}", flush=True)
    for name, count, mean, most in batch.slowest:
        print(f"    slowest: {most:5d} ms max  {mean:7.1f} ms mean  x{count:<5d} {name}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2_000,
                        help="documents to write (with --folder: its first N files, 0: all)")
    parser.add_argument("--batch", type=int, default=400)
    parser.add_argument("--folder", type=Path, default=None,
                        help="ingest this folder's *.txt files instead of small documents")
    parser.add_argument("--warmup", type=int, default=20,
                        help="documents ingested first and not counted")
    parser.add_argument("--concurrency", type=int, default=0)
    parser.add_argument("--slowms", type=int, default=50,
                        help="the MongoDB-wire server profiles commands slower than this")
    parser.add_argument("--top", type=int, default=5, help="slowest command shapes per batch")
    args = parser.parse_args()

    import pymongo
    import redis

    from pipeline.settings import Settings

    settings = Settings()
    processes = args.concurrency or settings.local.worker_concurrency
    tenant = settings.default_tenant
    with tempfile.TemporaryDirectory(prefix="conversa-growth-") as tmp_name:
        tmp = Path(tmp_name)
        written = tmp / "all"
        written.mkdir()
        warmup = tmp / "warmup"
        warmup.mkdir()
        if args.folder is not None:  # the folder's files, the warm-up from small documents
            write_corpus(warmup, args.warmup)
            for path in sorted(warmup.glob("*.txt")):
                path.rename(warmup / f"warmup-{path.name}")
            files = sorted(args.folder.glob("*.txt"))[: args.documents or None]
            for path in files:
                shutil.copyfile(path, written / path.name)
            files = sorted(written.glob("*.txt"))
            chars = sum(path.stat().st_size for path in files)
            args.documents = len(files)
        else:
            chars = write_corpus(written, args.documents + args.warmup)
            files = sorted(written.glob("*.txt"))
            for path in files[args.documents:]:
                shutil.move(str(path), warmup / path.name)
            files = files[:args.documents]
        folders = []
        for first in range(0, len(files), args.batch):
            folder = tmp / f"batch{first // args.batch + 1:03d}"
            folder.mkdir()
            for path in files[first:first + args.batch]:
                shutil.move(str(path), folder / path.name)
            folders.append(folder)
        data_dir = tmp / "data"
        env = {**os.environ, "CONVERSA_DATA_DIR": str(data_dir),
               "CONVERSA_LOCAL__WORKER_CONCURRENCY": str(processes),
               "CONVERSA_LOCAL__FLOWER_PORT": "0", "CONVERSA_API__PORT": "0"}
        env.setdefault("CONVERSA_MONGO_TIMEOUT_MS", "30000")
        print(f"growth: {args.documents} documents ({chars / args.documents:.0f} characters on "
              f"average) into tenant {tenant!r}, {len(folders)} batches of {args.batch}; "
              f"{processes} pool processes; python {sys.version.split()[0]}", flush=True)
        started = subprocess.run([*conversa(), "up"], env=env, capture_output=True, text=True,
                                 check=False)
        if started.returncode != 0:
            raise SystemExit(f"conversa up failed:\n{started.stdout[-2000:]}"
                             f"{started.stderr[-3000:]}")
        batches: list[Batch] = []
        try:
            stack = json.loads((data_dir / "stack.json").read_text())
            broker = redis.Redis.from_url(stack["broker_url"])
            db = pymongo.MongoClient(stack["mongo_url"], tz_aware=True)[DATABASE]
            db.command("profile", 1, slowms=args.slowms)
            mongo_pid = int(stack["pids"]["mongodb"])
            if args.warmup:
                seconds, _, _ = timed_cli(["ingest", str(warmup), "--wait"], env)
                print(f"warm-up: {args.warmup} documents in {seconds:.1f} s (not counted)",
                      flush=True)
            for number, folder in enumerate(folders, start=1):
                since = db.command("hello")["localTime"]
                tokens_before = embedder_tokens(broker)
                index_before = index_stage(broker)
                mongo_cpu_before = cpu_seconds(mongo_pid)
                load = os.getloadavg()[0]
                seconds, _, _ = timed_cli(["ingest", str(folder), "--wait"], env)
                index_after = index_stage(broker)
                tasks = index_after[1] - index_before[1]
                procs = stack_processes(stack)  # pool processes may have been replaced
                batch = Batch(
                    number=number, documents=len(list(folder.glob("*.txt"))), seconds=seconds,
                    tokens=embedder_tokens(broker) - tokens_before, load=load,
                    rss={f"{name} pid {pid}": (*rollup_mb(pid), memory_mb(pid)[1])
                         for name, pid in procs.items() if name.startswith("pool-")},
                    mongo_rss=rollup_mb(mongo_pid)[0],
                    mongo_cpu=cpu_seconds(mongo_pid) - mongo_cpu_before,
                    index_mean=(index_after[0] - index_before[0]) / tasks if tasks else 0.0,
                    slowest=slowest_commands(db, since, args.top))
                batches.append(batch)
                print_batch(batch)
                if number == 1:
                    first_audit = audit(db, tenant)
            db.command("profile", 0)
            print_audit(first_audit, audit(db, tenant))
            time_vector_index(data_dir, tenant)
        finally:
            subprocess.run([*conversa(), "down"], env=env, check=False, capture_output=True)

    first, last = batches[0], batches[-1]
    print(f"\nlast / first batch: {last.jobs_per_second / first.jobs_per_second:.2f} by jobs/s, "
          f"{last.tokens_per_second / max(first.tokens_per_second, 1e-9):.2f} by tokens/s "
          f"(goal >= 0.8); load {first.load:4.1f} and {last.load:4.1f}")
    grown = [f"{last.rss[k][0] - first.rss[k][0]:+.0f} MB" for k in last.rss if k in first.rss]
    print("pool RSS from the first batch to the last: " + (", ".join(grown) or
          "pool processes were replaced in between (see the pids above)"))


if __name__ == "__main__":
    main()
