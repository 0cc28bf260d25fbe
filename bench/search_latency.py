"""Benchmark: search latency as a tenant's LanceDB table grows, and recall of its vector index.

Fills a temporary data folder with synthetic documents (chunks of random words, clustered
unit vectors: each document's chunks lie around one of ``rows / 100`` centres, as a real
document's chunks lie near each other) through the real adapters of the local stack:
records in a SecantusDB server, chunk sets in the filesystem object store, vectors in
LanceDB by ``upsert_vector``. After each size it runs the periodic compaction
(``VectorIndex.optimize``, which builds the approximate index once the table holds
``lancedb.ann_min_rows`` vectors) and times ``pipeline.search.search`` (hybrid and
vector-only) on the real path: vector index, document records, chunk sets, ranking.

The query embedding is timed apart: search gets each query's vector from a lookup table,
and the local embedder embeds the same query texts on its own. Recall@10 compares the
index's top 10 with an exact (numpy) top 10 over the tenant's vectors.

    .venv/bin/python bench/search_latency.py [--sizes 1000,10000,100000] [--tenants 20]
        [--tenant-rows 5000] [--queries 100]
"""

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.factory import local_vectors_dir  # noqa: E402
from adapters.lancedb.vector_index import LanceDBVectorIndex  # noqa: E402
from domain.documents import Document, VectorRecord, chunk_id, version_id  # noqa: E402
from domain.versions import Version  # noqa: E402
from localstack.servers import free_port, start_mongo, stop_process  # noqa: E402
from pipeline import artifacts  # noqa: E402
from pipeline.bootstrap import Services, bootstrap  # noqa: E402
from pipeline.search import search  # noqa: E402
from pipeline.settings import Settings  # noqa: E402

DIMENSION = 384
CHUNKS_PER_DOCUMENT = 50
WORDS_PER_CHUNK = 120
VOCABULARY = 5_000
UPSERT_BATCH = 2_000
NOISE = 0.08


class LookupEmbedder:
    """An embedder that answers each query text with the vector the benchmark chose for it."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    @property
    def dimension(self) -> int:
        return DIMENSION

    @property
    def model_name(self) -> str:
        return "lookup"

    @property
    def max_input_tokens(self) -> int:
        return 256

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.vectors[text].tolist() for text in texts]


class Corpus:
    """Synthetic documents of one tenant, added in steps; keeps every vector for exact search."""

    def __init__(self, services: Services, tenant: str, seed: int) -> None:
        self.services = services
        self.tenant = tenant
        self.rng = np.random.default_rng(seed)
        self.words = [f"w{n}" for n in range(VOCABULARY)]
        self.matrix = np.empty((0, DIMENSION), dtype=np.float32)
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.documents = 0

    def grow_to(self, rows: int) -> float:
        """Add documents until the tenant holds ``rows`` chunks; returns the upsert seconds."""
        centres = max(rows // 100, 10)
        upsert_seconds = 0.0
        pending: list[VectorRecord] = []
        blocks = [self.matrix]
        while len(self.ids) < rows:  # _document() adds its ids at once
            count = min(CHUNKS_PER_DOCUMENT, rows - len(self.ids))
            centre = _unit(np.random.default_rng(int(self.rng.integers(centres))).standard_normal(
                DIMENSION).astype(np.float32))
            vectors = _unit(centre + NOISE * self.rng.standard_normal(
                (count, DIMENSION)).astype(np.float32))
            blocks.append(vectors)
            pending.extend(self._document(vectors))
            if len(pending) >= UPSERT_BATCH:
                upsert_seconds += self._upsert(pending)
                pending = []
        if pending:
            upsert_seconds += self._upsert(pending)
        self.matrix = np.concatenate(blocks)
        return upsert_seconds

    def _document(self, vectors: np.ndarray) -> list[VectorRecord]:
        number = self.documents
        self.documents += 1
        document_id = f"doc_{self.tenant}_{number:06d}"
        job_id = f"job_{self.tenant}_{number:06d}"
        sha = f"{number:064x}"
        chunks_key = f"{self.tenant}/derived/{sha}/chunks.json"
        texts = [" ".join(self.rng.choice(self.words, WORDS_PER_CHUNK)) for _ in vectors]
        keywords = sorted({str(w) for w in self.rng.choice(self.words, 8)})
        chunks = []
        offset = 0
        for index, text in enumerate(texts):
            chunks.append(artifacts.ChunkText(index=index, text=text, start=offset,
                                              end=offset + len(text)))
            offset += len(text) + 1
        artifacts.save_chunks(self.services.objects, chunks_key,
                              artifacts.ChunkSet("text/plain", keywords, chunks))
        version = version_id(document_id, job_id)
        now = datetime.now(UTC)
        self.services.documents.put(Document(
            document_id=document_id, tenant=self.tenant, source=f"{document_id}.txt",
            source_name=f"{document_id}.txt", created_at=now, updated_at=now,
            served=Version(job_id=job_id, created_at=now, sha256=sha,
                           object_key=f"{self.tenant}/{sha}", size=offset,
                           source_name=f"{document_id}.txt", content_type="text/plain",
                           chunks_key=chunks_key, embeddings_key=chunks_key + ".npy",
                           vector_version=version, chunk_count=len(texts),
                           keywords=keywords)), None)
        records = []
        for index, values in enumerate(vectors):
            vector_id = chunk_id(version, index)
            self.ids.append(vector_id)
            self.texts.append(texts[index])
            records.append(VectorRecord(id=vector_id, values=values.tolist(), metadata={
                "document_id": document_id, "chunk_index": index, "source": f"{document_id}.txt",
                "sha256": sha, "keywords": keywords, "content_type": "text/plain"}))
        return records

    def _upsert(self, records: list[VectorRecord]) -> float:
        started = time.perf_counter()
        self.services.vectors.upsert_vector(self.tenant, records)
        return time.perf_counter() - started

    def queries(self, count: int, seed: int) -> list[tuple[str, np.ndarray, set[str]]]:
        """(text, vector, exact top-10 ids): a few words of a chunk, a vector near that chunk."""
        rng = np.random.default_rng(seed)
        found = []
        for row in rng.integers(0, len(self.ids), count):
            words = self.texts[row].split()
            start = int(rng.integers(0, len(words) - 6))
            text = " ".join(words[start:start + 5]) + f" q{len(found)}"
            vector = _unit(self.matrix[row] + NOISE * rng.standard_normal(DIMENSION).astype(
                np.float32))
            nearest = np.argpartition(-(self.matrix @ vector), 10)[:10]
            found.append((text, vector, {self.ids[i] for i in nearest}))
        return found


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    result: np.ndarray = (vectors / norms).astype(np.float32)
    return result


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p50 = ordered[len(ordered) // 2] * 1000
    p95 = ordered[min(len(ordered) - 1, math.ceil(len(ordered) * 0.95) - 1)] * 1000
    return f"p50 {p50:7.1f} ms  p95 {p95:7.1f} ms"


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def measure(services: Services, lookup: LookupEmbedder, exact: LanceDBVectorIndex, label: str,
            tenants: list[str], queries: list[tuple[str, str, np.ndarray, set[str]]]
            ) -> dict[str, float]:
    """Time search (hybrid, vector-only) and the bare vector index; recall@10 of the index."""
    for _, text, vector, _ in queries:
        lookup.vectors[text] = vector
    index_times: list[float] = []
    hybrid: list[float] = []
    vector_only: list[float] = []
    recalls: list[float] = []
    for tenant, text, vector, nearest in queries:
        started = time.perf_counter()
        hits = services.vectors.semantic_search(tenant, vector.tolist(), 10)
        index_times.append(time.perf_counter() - started)
        recalls.append(len({hit.id for hit in hits} & nearest) / 10)
        started = time.perf_counter()
        search(services, tenant, text, top_k=10, ranking="hybrid")
        hybrid.append(time.perf_counter() - started)
        started = time.perf_counter()
        search(services, tenant, text, top_k=10, ranking="vector")
        vector_only.append(time.perf_counter() - started)
    recall = sum(recalls) / len(recalls)
    status = _ann(exact, tenants[0])
    print(f"{label:34s} search hybrid      {percentiles(hybrid)}   ({load()})")
    print(f"{'':34s} search vector-only {percentiles(vector_only)}")
    print(f"{'':34s} vector index alone {percentiles(index_times)}   recall@10 {recall:.3f}"
          f"   {status}", flush=True)
    return {"recall": recall}


def _ann(vectors: LanceDBVectorIndex, tenant: str) -> str:
    rows, indexed = vectors.ann_status(tenant)
    return f"rows {rows}, " + ("exact scan" if indexed is None else
                               f"ANN index over {indexed} rows")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--tenant-rows", type=int, default=5_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    folder = Path(tempfile.mkdtemp(prefix="conversa-search-bench-"))
    port = free_port()
    mongo = start_mongo(port, folder / "mongo", folder / "mongo.log")
    try:
        settings = Settings(data_dir=folder / "data", mongo_url=f"mongodb://127.0.0.1:{port}")
        print(f"search_latency: sizes {sizes}, {args.tenants} tenants x {args.tenant_rows}, "
              f"{args.queries} queries, ANN index from {settings.lancedb.ann_min_rows} rows "
              f"(nprobes {settings.lancedb.ann_nprobes}, refine "
              f"{settings.lancedb.ann_refine_factor})   ({load()})", flush=True)
        real = bootstrap(settings)
        texts = [f"how does w{n} relate to w{n + 7} in the report" for n in range(args.queries)]
        real.embedder.generate_embeddings(texts[:1])  # the model loads once per process
        embed_times = []
        for text in texts:
            started = time.perf_counter()
            real.embedder.generate_embeddings([text])
            embed_times.append(time.perf_counter() - started)
        print(f"{'query embedding (local model)':34s} {percentiles(embed_times)}"
              f"   ({load()})", flush=True)
        lookup = LookupEmbedder({})
        services = bootstrap(settings, embedder=lookup)
        corpus = Corpus(services, "solo", seed=1)
        # The same folder as the services' index, without ever building an approximate index.
        exact = LanceDBVectorIndex(local_vectors_dir(settings, lookup.model_name), DIMENSION,
                                   ann_min_rows=0)
        for size in sizes:
            upsert = corpus.grow_to(size)
            started = time.perf_counter()
            exact.optimize("solo")
            compact = time.perf_counter() - started
            queries = [("solo", *q) for q in corpus.queries(args.queries, seed=size)]
            _, indexed = exact.ann_status("solo")
            if indexed is None and size >= settings.lancedb.ann_min_rows > 0:
                # The same table before its index: what every search would cost without it.
                scans = []
                for _, _, vector, _ in queries[:30]:
                    started = time.perf_counter()
                    exact.semantic_search("solo", vector.tolist(), 10)
                    scans.append(time.perf_counter() - started)
                print(f"{size:>7} chunks, one tenant, exact scan (no index): vector index "
                      f"alone {percentiles(scans)}   ({load()})", flush=True)
            started = time.perf_counter()
            services.vectors.optimize("solo")  # type: ignore[attr-defined]
            build = time.perf_counter() - started
            print(f"{size:>7} chunks, one tenant: upsert {upsert:.1f} s, compaction "
                  f"{compact:.1f} s, index build {build:.1f} s", flush=True)
            measure(services, lookup, exact, f"{size} chunks, one tenant", ["solo"], queries)
        if args.tenants:
            tenants = [f"tenant{n:02d}" for n in range(args.tenants)]
            queries_all = []
            started = time.perf_counter()
            for number, tenant in enumerate(tenants):
                other = Corpus(services, tenant, seed=100 + number)
                other.grow_to(args.tenant_rows)
                services.vectors.optimize(tenant)  # type: ignore[attr-defined]
                per = max(1, args.queries // len(tenants))
                queries_all.extend((tenant, *q) for q in other.queries(per, seed=number))
            print(f"{args.tenants} tenants x {args.tenant_rows} chunks loaded in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            measure(services, lookup, exact, f"{args.tenants} tenants x {args.tenant_rows}",
                    tenants, queries_all)
    finally:
        stop_process(mongo)
        if args.keep:
            print(f"data kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
