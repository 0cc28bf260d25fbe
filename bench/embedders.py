"""Benchmark: the local embedding routes side by side, in one run, as the pool would run them.

Chunks a folder's ``*.txt`` files as the extract stage does, then embeds the same chunks with
each route (``bench/embed_alone.py`` lists them) in P processes x 1 thread, the routes
interleaved round by round (A, B, C, A, B, C, ...) so a busy neighbour slows them alike. Prints
each run with the load average beside it, then per route the median tokens/s and tokens per
CPU second, and the ratio of each route to sentence-transformers on torch, paired round by
round. Also prints how close each route's vectors are to sentence-transformers' (smallest
cosine over a sample). The torch route needs the bench extra
(``scripts/setup local dev bench``).

    .venv/bin/python bench/embedders.py FOLDER [--limit 600] [--rounds 3] [--processes 2]
        [--routes int8-today,fused,torch] [--sample 48]
        (routes: bench/embed_alone.py's ROUTES; e5-small is the second local model)
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.embed_alone import (  # noqa: E402
    OTHER_MODELS,
    ROUTES,
    AloneRun,
    line,
    model_tokens,
    run_alone,
)


def chunk_groups(folder: Path, limit: int | None) -> list[list[str]]:
    """Each document's chunk texts, chunked as the extract stage chunks (settings' sizes)."""
    from adapters.onnx.embedder import OnnxEmbedder
    from adapters.parsing.parsers import LibraryParser
    from domain.chunking import chunk_document
    from pipeline.settings import ChunkingSettings

    cfg = ChunkingSettings()
    counter = OnnxEmbedder()
    parser = LibraryParser()
    groups: list[list[str]] = []
    total = 0
    for path in sorted(folder.glob("*.txt")):
        parsed = parser.parse(path.read_bytes())
        chunks = chunk_document(path.stem, parsed, counter.count_tokens,
                                max_tokens=min(cfg.size_tokens, counter.max_input_tokens),
                                overlap_tokens=cfg.overlap_tokens)
        texts = [c.text for c in chunks]
        if limit is not None:
            texts = texts[: limit - total]
        if texts:
            groups.append(texts)
            total += len(texts)
        if limit is not None and total >= limit:
            break
    return groups


def closeness(routes: list[str], sample: list[str]) -> dict[str, float]:
    """Smallest cosine between each route's vectors and sentence-transformers' fp32 ones."""
    import numpy as np

    from bench.embed_alone import _encoder

    reference = np.asarray(_encoder("torch")(sample))
    found = {}
    for route in routes:
        vectors = _encoder(route)(sample)
        matrix = np.vstack(vectors) if isinstance(vectors, list) else np.asarray(vectors)
        found[route] = float((matrix * reference).sum(axis=1).min())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int, default=600, help="chunks (0: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--routes", default="int8-today,fused,torch")
    parser.add_argument("--sample", type=int, default=48,
                        help="chunks whose vectors are compared with torch's (0: all)")
    args = parser.parse_args()
    routes = args.routes.split(",")
    unknown = set(routes) - set(ROUTES)
    if unknown:
        raise SystemExit(f"unknown routes {sorted(unknown)}; known: {sorted(ROUTES)}")

    groups = chunk_groups(args.folder, args.limit or None)
    texts = [t for g in groups for t in g]
    tokens = model_tokens(texts)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {len(groups)} documents, "
          f"{len(texts)} chunks, {tokens} model tokens; {args.processes} processes x 1 thread")
    for route in routes:
        print(f"  {route:<12} {ROUTES[route]}")
    if "torch" in routes:
        size = args.sample or len(texts)
        sample = texts[:: max(1, len(texts) // size)][:size]
        compared = [r for r in routes if r != "torch" and r not in OTHER_MODELS]
        for route, cosine in closeness(compared, sample).items():
            print(f"smallest cosine to sentence-transformers fp32, {route:<12} {cosine:.6f}")

    runs: dict[str, list[AloneRun]] = {r: [] for r in routes}
    for n in range(args.rounds):
        for route in routes:
            run = run_alone(route, groups, args.processes, tokens)
            runs[route].append(run)
            print(f"round {n + 1}  {line(run)}", flush=True)

    print("\nroute        median tokens/s  median tokens/CPU-s  vs torch (paired, wall / CPU)")
    for route in routes:
        wall = statistics.median(r.tokens_per_second for r in runs[route])
        cpu = statistics.median(r.tokens_per_cpu_second for r in runs[route])
        versus = ""
        if "torch" in runs and route != "torch":
            pairs = list(zip(runs[route], runs["torch"], strict=True))
            by_wall = statistics.median(a.tokens_per_second / b.tokens_per_second
                                        for a, b in pairs)
            by_cpu = statistics.median(a.tokens_per_cpu_second / b.tokens_per_cpu_second
                                       for a, b in pairs)
            versus = f"{by_wall:5.2f}x / {by_cpu:5.2f}x"
        print(f"{route:<12} {wall:15.0f} {cpu:20.0f}  {versus}")


if __name__ == "__main__":
    main()
