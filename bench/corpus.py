"""Benchmark: a corpus through the real CLI on a local stack, against the embedder alone.

Copies a folder's ``*.txt`` files (``--documents N``: the first N only, for a quick run),
starts a local stack in a temporary data folder (``conversa up``), and times
``conversa ingest FOLDER --wait`` through the real CLI. Then it embeds exactly the chunks that
ingest made (read back from the stack's object store) with the same embedder alone, in as
many processes as the worker pool has, one thread each (``bench/embed_alone.py``), once before
and once after the ingest, so a neighbour's load weighs on both sides alike. Then it times
the unchanged re-ingest.

Prints documents, chunks, model tokens, tokens/s end to end and alone and their ratio (by wall
time, and by CPU seconds, which a busy machine distorts less), the CPU seconds of each stage
(recorded by the workers) and of each process of the stack, the peak resident memory of each
pool process, and the re-ingest time. Every figure has the load average beside it.

    .venv/bin/python bench/corpus.py FOLDER [--documents N] [--concurrency 2]

The reference corpus: ``python ../shared/bench/make_corpus.py OUT_DIR`` (120 modules' pydoc).
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.embed_alone import AloneRun, line, model_tokens, run_alone  # noqa: E402

_TICKS = os.sysconf("SC_CLK_TCK")


def conversa() -> list[str]:
    """The installed CLI beside this interpreter."""
    script = Path(sys.executable).with_name("conversa")
    if not script.exists():
        raise SystemExit(f"no conversa CLI at {script}: run scripts/setup local dev")
    return [str(script)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (its own, not its children's)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def proc_mb(pid: int, table: str, *keys: str) -> tuple[float, ...]:
    """The ``keys`` (kB fields) of ``/proc/PID/<table>`` in MB; zeros once the process is gone."""
    values: dict[str, float] = {}
    try:
        for row in Path(f"/proc/{pid}/{table}").read_text().splitlines():
            key, _, value = row.partition(":")
            if key in keys:
                values[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return tuple(values.get(key, 0.0) for key in keys)


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of one process in MB."""
    rss, peak = proc_mb(pid, "status", "VmRSS", "VmHWM")
    return rss, peak


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def stack_processes(stack: dict[str, Any]) -> dict[str, int]:
    """Every process of the stack by name; the worker's pool processes as pool-1, pool-2..."""
    named = {name: int(pid) for name, pid in stack["pids"].items()}
    for n, pid in enumerate(sorted(children(named["worker"])), start=1):
        named[f"pool-{n}"] = pid
    return named


def timed_cli(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the CLI process, its stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([*conversa(), *args], env=env, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"conversa {' '.join(args)} failed ({done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, done.stdout


def stage_figures(broker_url: str) -> dict[str, tuple[float, float, int]]:
    """Per stage: (CPU seconds, wall seconds, tasks) as the workers recorded them."""
    import redis

    from adapters.redis import worker_metrics as telemetry

    client = redis.Redis.from_url(broker_url)
    cpu = {k.decode(): float(v) for k, v in client.hgetall(telemetry.CPU_KEY).items()}
    durations = {k.decode(): float(v) for k, v in client.hgetall(telemetry.DURATION_KEY).items()}
    figures = {}
    for stage in ("store", "record", "extract", "embed", "index"):
        sep = telemetry.SEPARATOR
        figures[stage] = (cpu.get(stage, 0.0), durations.get(f"{stage}{sep}sum", 0.0),
                          int(durations.get(f"{stage}{sep}count", 0)))
    return figures


def chunk_groups(data_dir: Path) -> list[list[str]]:
    """Each ingested document's chunk texts, read from the stack's object store."""
    from pipeline import artifacts
    from pipeline.bootstrap import bootstrap
    from pipeline.settings import Settings

    services = bootstrap(Settings(data_dir=data_dir))
    keys = sorted({job.chunks_key for job in services.jobs.list_jobs(limit=10**6)
                   if job.chunks_key})
    return [[c.text for c in artifacts.load_chunks(services.objects, key).chunks]
            for key in keys]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--documents", type=int, default=0, help="the first N files (0: all)")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="worker pool processes (default: the settings')")
    args = parser.parse_args()

    from pipeline.settings import Settings

    settings = Settings()
    processes = args.concurrency or settings.local.worker_concurrency
    route = settings.onnx_route
    files = sorted(args.folder.glob("*.txt"))
    if args.documents:
        files = files[: args.documents]
    if not files:
        raise SystemExit(f"no *.txt files in {args.folder}")

    with tempfile.TemporaryDirectory(prefix="conversa-corpus-") as tmp_name:
        tmp = Path(tmp_name)
        corpus = tmp / "corpus"
        corpus.mkdir()
        for path in files:
            shutil.copyfile(path, corpus / path.name)
        data_dir = tmp / "data"
        env = {**os.environ, "CONVERSA_DATA_DIR": str(data_dir),
               "CONVERSA_LOCAL__WORKER_CONCURRENCY": str(processes),
               "CONVERSA_LOCAL__FLOWER_PORT": "0", "CONVERSA_API__PORT": "0"}
        started = subprocess.run([*conversa(), "up"], env=env, capture_output=True, text=True,
                                 check=False)
        if started.returncode != 0:
            raise SystemExit(f"conversa up failed:\n{started.stdout[-2000:]}"
                             f"{started.stderr[-3000:]}")
        try:
            stack = json.loads((data_dir / "stack.json").read_text())
            procs = stack_processes(stack)
            cpu_before = {name: cpu_seconds(pid) for name, pid in procs.items()}
            load_ingest = os.getloadavg()[0]
            seconds, cli_cpu, _ = timed_cli(["ingest", str(corpus), "--wait"], env)
            cpu_used = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in procs.items()}
            cpu_used["cli"] = cli_cpu
            memory = {name: memory_mb(pid) for name, pid in procs.items()
                      if name.startswith("pool-")}
            stages = stage_figures(stack["broker_url"])
            load_reingest = os.getloadavg()[0]
            reingest_seconds, _, _ = timed_cli(["ingest", str(corpus), "--wait"], env)
            groups = chunk_groups(data_dir)
        finally:
            subprocess.run([*conversa(), "down"], env=env, check=False, capture_output=True)

    texts = [t for g in groups for t in g]
    tokens = model_tokens(texts)
    alone: list[AloneRun] = [run_alone(route, groups, processes, tokens)]
    alone_line_1 = line(alone[0])
    alone.append(run_alone(route, groups, processes, tokens))  # after, as well as before
    alone_rate = sum(r.tokens_per_second for r in alone) / len(alone)
    alone_cpu_rate = sum(r.tokens_per_cpu_second for r in alone) / len(alone)
    total_cpu = sum(cpu_used.values())

    print(f"python {sys.version.split()[0]}; {len(files)} documents, {len(texts)} chunks, "
          f"{tokens} model tokens; route {route}, {processes} pool processes x 1 thread")
    print(f"end to end      {seconds:8.1f} s  {tokens / seconds:7.0f} tokens/s  "
          f"{tokens / total_cpu:7.0f} tokens/CPU-s (all stack processes)  "
          f"{len(files) / seconds:6.1f} jobs/s  load {load_ingest:4.1f}")
    print(f"alone (1)       {alone_line_1}")
    print(f"alone (2)       {line(alone[1])}")
    print(f"ratio end to end / alone: {tokens / seconds / alone_rate:.2f} by wall time, "
          f"{tokens / total_cpu / alone_cpu_rate:.2f} by CPU seconds")
    print(f"unchanged re-ingest {reingest_seconds:6.2f} s  ({seconds / reingest_seconds:.0f}x "
          f"faster than the first)  load {load_reingest:4.1f}")
    print("\nstage     CPU s    wall s   tasks   (recorded by the pool processes)")
    for stage, (cpu, wall, count) in stages.items():
        print(f"{stage:<8} {cpu:7.1f} {wall:9.1f} {count:7d}")
    print("\nprocess   CPU s during the first ingest")
    for name, used in sorted(cpu_used.items(), key=lambda item: -item[1]):
        print(f"{name:<8} {used:7.1f}")
    print(f"{'total':<8} {total_cpu:7.1f}")
    print("\npool process  RSS now MB  peak RSS MB")
    for name, (now, peak) in memory.items():
        print(f"{name:<12} {now:10.0f} {peak:12.0f}")


if __name__ == "__main__":
    main()
