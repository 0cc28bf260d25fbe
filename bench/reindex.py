"""Benchmark: re-index a tenant from its stored embeddings against a full re-embed of it.

Starts a throwaway MongoDB-wire server, ingests a corpus (documents mixed from the samples'
paragraphs) with the local stack's adapters (filesystem objects, LanceDB, the local ONNX
MiniLM embedder, stages run in this process), then fills two new, empty LanceDB indexes with
the same vectors' worth of documents:

- **re-index**: ``pipeline.reindex`` into the first, from the stored chunks and embeddings
  (the embedder is counted: it must not be called);
- **re-embed**: every document's stored chunks embedded again and upserted into the second,
  which is what a migration costs without stored embeddings.

Prints both times side by side, the ratio, and the embedder calls each made.

    .venv/bin/python bench/reindex.py [--docs 40] [--paragraphs 8]
"""

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from adapters.lancedb.vector_index import LanceDBVectorIndex  # noqa: E402
from adapters.onnx.embedder import OnnxEmbedder  # noqa: E402
from domain.indexes import parse_target  # noqa: E402
from domain.status import JobStatus  # noqa: E402
from pipeline import artifacts  # noqa: E402
from pipeline.bootstrap import bootstrap  # noqa: E402
from pipeline.producer import enqueue, file_event  # noqa: E402
from pipeline.reindex import reindex  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.stages import UPSERT_BATCH, version_records  # noqa: E402
from tests.support.inline import InlineDispatcher  # noqa: E402
from tests.support.servers import mongo_server  # noqa: E402

TENANT = "bench"


class CountingEmbedder:
    """The embedder, with its calls and texts counted."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls, self.texts = inner, 0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        self.texts += len(texts)
        vectors: list[list[float]] = self.inner.generate_embeddings(texts)
        return vectors


def corpus(folder: Path, docs: int, paragraphs: int) -> list[Path]:
    samples = sorted((ROOT / "samples").iterdir())
    pool = [p.strip() for s in samples for p in s.read_text().split("\n\n") if p.strip()]
    files = []
    for n in range(docs):
        rng = random.Random(n)
        target = folder / f"doc-{n:04d}.md"
        target.write_text(f"# Notes {n}\n\n" + "\n\n".join(rng.sample(pool, paragraphs)))
        files.append(target)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--paragraphs", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-reindex-") as tmp:
        work = Path(tmp)
        with mongo_server(work / "mongo") as mongo_url:
            settings = Settings(data_dir=work / "data", mongo_url=mongo_url,
                                mongo_database="bench_reindex")
            embedder = CountingEmbedder(OnnxEmbedder())
            dispatcher = InlineDispatcher()
            services = bootstrap(settings, embedder=embedder, dispatcher=dispatcher)
            dispatcher.services = services
            (work / "docs").mkdir()
            files = corpus(work / "docs", args.docs, args.paragraphs)
            started = time.perf_counter()
            jobs = [services.jobs.get(enqueue(services, file_event(f, TENANT, 10**9)).job_id)
                    for f in files]
            ingest = time.perf_counter() - started
            failed = [job for job in jobs if job.status is not JobStatus.DONE]
            if failed:
                raise SystemExit(f"{len(failed)} jobs failed: {failed[0].error}")
            chunks = sum(job.chunk_count or 0 for job in jobs)
            print(f"corpus: {len(jobs)} documents, {chunks} chunks "
                  f"(first ingest {ingest:.2f} s)")

            calls = embedder.calls
            started = time.perf_counter()
            run = reindex(services, TENANT, parse_target(f"lancedb:{work / 'reindexed'}"))
            reindexed = time.perf_counter() - started
            reindex_calls = embedder.calls - calls
            assert run.vectors_copied == chunks, run

            target = LanceDBVectorIndex(work / "reembedded", embedder.dimension)
            calls = embedder.calls
            started = time.perf_counter()
            for job in jobs:
                assert job.chunks_key is not None
                chunk_set = artifacts.load_chunks(services.objects, job.chunks_key)
                texts = [chunk.text for chunk in chunk_set.chunks]
                batch = settings.embed_batch_size
                vectors = [v for first in range(0, len(texts), batch)
                           for v in embedder.generate_embeddings(texts[first:first + batch])]
                records = version_records(job.document_id, f"{job.document_id}.re",
                                          job.source, job.sha256 or "", job.created_at,
                                          job.chunks_key, chunk_set,
                                          np.asarray(vectors, dtype=np.float32))
                for first in range(0, len(records), UPSERT_BATCH):
                    target.upsert_vector(TENANT, records[first:first + UPSERT_BATCH])
            reembedded = time.perf_counter() - started
            reembed_calls = embedder.calls - calls

    print(f"{'':<12} {'seconds':>9} {'embedder calls':>15} {'chunks/s':>10}")
    print(f"{'re-index':<12} {reindexed:>9.2f} {reindex_calls:>15} {chunks / reindexed:>10.0f}")
    print(f"{'re-embed':<12} {reembedded:>9.2f} {reembed_calls:>15} "
          f"{chunks / reembedded:>10.0f}")
    print(f"re-index is {reembedded / reindexed:.1f}x faster than re-embedding")


if __name__ == "__main__":
    main()
