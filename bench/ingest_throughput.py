"""Benchmark: chunks/s of the end-to-end ingest next to chunks/s of the embedder alone.

Starts a throwaway Valkey and MongoDB-wire server and real Celery workers (as `conversa up`
would), ingests the documents in a folder (default: samples/, repeated --copies times under
distinct sources so every copy is parsed and embedded again), then embeds the very same chunks
with the embedder alone in this process. Prints both figures and their ratio.

    .venv/bin/python bench/ingest_throughput.py [--folder samples] [--copies 4] [--concurrency 2]
"""

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import artifacts  # noqa: E402
from pipeline.producer import enqueue, file_event  # noqa: E402
from tests.support.servers import mongo_server, valkey_server  # noqa: E402
from tests.support.workers import celery_worker, producer, stack_env, wait_terminal  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=ROOT / "samples")
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="conversa-bench-") as tmp_name:
        tmp = Path(tmp_name)
        corpus = tmp / "corpus"
        for copy in range(args.copies):
            for source in sorted(args.folder.iterdir()):
                target = corpus / f"copy{copy}" / source.name
                target.parent.mkdir(parents=True, exist_ok=True)
                # A distinct content per copy, so dedupe does not skip the work.
                target.write_bytes(source.read_bytes() + f"\n\ncopy {copy}\n".encode())
        files = sorted(p for p in corpus.rglob("*") if p.is_file())

        with valkey_server(tmp / "valkey") as redis_url, mongo_server(tmp / "mongo") as mongo_url:
            env = stack_env(redis_url, mongo_url, f"bench_{uuid.uuid4().hex[:8]}", tmp / "data")
            services, _ = producer(env)
            with celery_worker(env, tmp / "worker.log", concurrency=args.concurrency):
                started = time.perf_counter()
                jobs = [enqueue(services, file_event(f, "bench", 10**9)) for f in files]
                finished = wait_terminal(services, [j.job_id for j in jobs], timeout=3600)
                pipeline_seconds = time.perf_counter() - started
            failed = [j for j in finished if j.error]
            if failed:
                raise SystemExit(f"{len(failed)} jobs failed: {failed[0].error}")
            texts = [chunk.text for job in finished if job.chunks_key
                     for chunk in artifacts.load_chunks(services.objects, job.chunks_key).chunks]

        embedder = services.embedder
        embedder.generate_embeddings(["warm up"])
        batch = services.settings.embed_batch_size
        started = time.perf_counter()
        for first in range(0, len(texts), batch):
            embedder.generate_embeddings(texts[first:first + batch])
        embed_seconds = time.perf_counter() - started
        shutil.rmtree(tmp / "data", ignore_errors=True)

    end_to_end = len(texts) / pipeline_seconds
    embed_only = len(texts) / embed_seconds
    print(f"documents                 {len(files)}")
    print(f"chunks                    {len(texts)}")
    print(f"end-to-end ingest         {pipeline_seconds:8.2f} s  {end_to_end:8.1f} chunks/s "
          f"({args.concurrency} worker processes)")
    print(f"embedder alone            {embed_seconds:8.2f} s  {embed_only:8.1f} chunks/s "
          "(1 process)")
    print(f"ratio end-to-end/embedder {end_to_end / embed_only:8.2f}")


if __name__ == "__main__":
    main()
