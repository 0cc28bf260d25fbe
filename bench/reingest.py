"""Benchmark: the first ingest of a corpus against re-ingesting it unchanged (dedupe).

Starts a throwaway Valkey and MongoDB-wire server and real Celery workers (as `conversa up`
would), then ingests a mixed corpus twice under the same sources: the samples (Markdown and
text) plus multi-page PDFs and DOCX files made from their paragraphs. The first run parses,
chunks, embeds and indexes everything; the second finds every document current at the same
content and does none of that. Prints both times and the speed-up (the issue asks >= 20x).

The producer hashes each file, and an unchanged one is recorded done at enqueue without a
broker message, so the re-ingest costs a hash, two MongoDB reads and one insert per document.
Measured here with 2 worker processes on a 2-core machine: first ingest 26.4 s, re-ingest
0.23 s, 113x. (When dedupe ran only in the store stage, with a task and ~7 MongoDB writes per
document, it was 12.7x to 29.5x.)

    .venv/bin/python bench/reingest.py [--pdfs 8] [--pages 16] [--concurrency 2]
"""

import argparse
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domain.status import JobStatus  # noqa: E402
from pipeline.producer import enqueue, file_event  # noqa: E402
from tests.support.documents import make_docx, make_pdf  # noqa: E402
from tests.support.servers import mongo_server, valkey_server  # noqa: E402
from tests.support.workers import celery_worker, producer, stack_env, wait_terminal  # noqa: E402


def corpus(folder: Path, pdfs: int, pages: int) -> list[Path]:
    samples = sorted((ROOT / "samples").iterdir())
    paragraphs = [p.strip() for s in samples for p in s.read_text().split("\n\n") if p.strip()]
    files = []
    for sample in samples:
        target = folder / sample.name
        target.write_bytes(sample.read_bytes())
        files.append(target)
    for n in range(pdfs):
        rng = random.Random(n)
        page_lines = []
        for _ in range(pages):
            text = " ".join(rng.sample(paragraphs, 4))
            words = text.split()
            page_lines.append([" ".join(words[i:i + 14]) for i in range(0, len(words), 14)])
        target = folder / f"report-{n}.pdf"
        target.write_bytes(make_pdf(page_lines))
        files.append(target)
        docx_target = folder / f"notes-{n}.docx"
        rng = random.Random(1000 + n)
        blocks = [("h1", f"Notes {n}")] + [("p", p) for p in rng.sample(paragraphs, 12)]
        docx_target.write_bytes(make_docx(blocks))
        files.append(docx_target)
    return files


def run(services, files: list[Path]) -> tuple[float, list]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    jobs = [enqueue(services, file_event(f, "bench", 10**9)) for f in files]
    enqueued = time.perf_counter() - started
    finished = wait_terminal(services, [j.job_id for j in jobs], timeout=3600)
    seconds = time.perf_counter() - started
    print(f"  ({len(jobs)} jobs enqueued in {enqueued:.2f} s, all finished in {seconds:.2f} s)")
    failed = [j for j in finished if j.status is not JobStatus.DONE]
    if failed:
        raise SystemExit(f"{len(failed)} jobs failed: {failed[0].error}")
    return seconds, finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdfs", type=int, default=8)
    parser.add_argument("--pages", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="conversa-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "corpus").mkdir()
        files = corpus(tmp / "corpus", args.pdfs, args.pages)
        with valkey_server(tmp / "valkey") as redis_url, mongo_server(tmp / "mongo") as mongo_url:
            env = stack_env(redis_url, mongo_url, f"bench_{uuid.uuid4().hex[:8]}", tmp / "data")
            services, _ = producer(env)
            log = tmp / "worker.log"
            with celery_worker(env, log, concurrency=args.concurrency):
                first_seconds, first = run(services, files)
                vectors = services.vectors.count("bench")
                again_seconds, again = run(services, files)
                assert services.vectors.count("bench") == vectors

    chunks = sum(job.chunk_count or 0 for job in first)
    print(f"documents                 {len(files)} ({len(files) - 2 * args.pdfs} text/markdown, "
          f"{args.pdfs} PDFs of {args.pages} pages, {args.pdfs} DOCX)")
    print(f"chunks                    {chunks}")
    print(f"first ingest              {first_seconds:8.2f} s")
    print(f"re-ingest, unchanged      {again_seconds:8.2f} s  "
          f"(same chunks keys: {[j.chunks_key for j in first] == [j.chunks_key for j in again]})")
    print(f"speed-up                  {first_seconds / again_seconds:8.1f}x "
          f"({args.concurrency} worker processes)")


if __name__ == "__main__":
    main()
