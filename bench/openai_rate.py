"""Benchmark: how close the Redis rate limiter drives OpenAI embeddings to a server's rate caps.

Starts a throwaway Valkey and the fake OpenAI server with requests- and tokens-per-minute caps
(enforced over a sliding window), then runs the OpenAI embedder in several processes for a
while, each with the Redis limiter configured at the very same caps. Prints embeddings per
request, requests and tokens per minute reached (and their fraction of the caps), the busiest
window against the caps, and the 429s the server answered.

The window is shorter than a minute (default 10 s, the caps scaled to it) so that a run of
~20 s measures the sustained rate rather than the first burst.

    .venv/bin/python bench/openai_rate.py [--seconds 20] [--processes 2] [--rpm 3000]
        [--tpm 1000000] [--window 10] [--texts-per-call 32] [--words-per-text 200]
"""

import argparse
import multiprocessing
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.openai.embedder import OpenAIEmbedder  # noqa: E402
from adapters.redis.rate_limit import RedisRateLimiter  # noqa: E402
from domain.errors import TransientError  # noqa: E402
from tests.support.fake_openai import FakeOpenAI, window_peaks  # noqa: E402
from tests.support.servers import valkey_server  # noqa: E402

VOCABULARY = [
    "ingest", "pipeline", "worker", "queue", "document", "chunk", "vector", "index", "tenant",
    "search", "keyword", "retry", "backoff", "token", "bucket", "redis", "celery", "embedding",
    "model", "request", "limit", "window", "minute", "answer", "server", "client", "process",
    "batch", "latency", "throughput",
]


def texts_for(seed: int, count: int, words: int) -> list[str]:
    rng = random.Random(seed)
    return [f"chunk {seed}-{i}: " + " ".join(rng.choice(VOCABULARY) for _ in range(words))
            for i in range(count)]


def worker(options: dict[str, Any], seed: int, start_at: float) -> dict[str, Any]:
    limiter = RedisRateLimiter(
        options["redis_url"], name=options["name"],
        requests_per_window=options["requests_per_window"],
        tokens_per_window=options["tokens_per_window"],
        window_seconds=options["window"], latency_allowance_seconds=options["allowance"],
        max_wait_seconds=options["window"] * 2)
    embedder = OpenAIEmbedder(options["api_key"], dimension=options["dimension"],
                              base_url=options["base_url"], limiter=limiter)
    texts = texts_for(seed, options["texts_per_call"], options["words_per_text"])
    embedder.batches(texts)  # load the tokenizer before the clock starts
    time.sleep(max(0.0, start_at - time.time()))
    embedded = calls = transient = 0
    deadline = start_at + options["seconds"]
    while time.time() < deadline:
        try:
            embedded += len(embedder.generate_embeddings(texts))
            calls += 1
        except TransientError:
            transient += 1
    return {"embedded": embedded, "calls": calls, "transient": transient}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rpm", type=int, default=3000, help="requests per minute (the cap)")
    parser.add_argument("--tpm", type=int, default=1_000_000, help="tokens per minute (the cap)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds; caps scale to it")
    parser.add_argument("--allowance", type=float, default=0.2,
                        help="the limiter's latency allowance, seconds")
    parser.add_argument("--texts-per-call", type=int, default=32)
    parser.add_argument("--words-per-text", type=int, default=200)
    parser.add_argument("--dimension", type=int, default=1536)
    args = parser.parse_args()

    requests_per_window = max(2, round(args.rpm * args.window / 60))
    tokens_per_window = round(args.tpm * args.window / 60)
    with tempfile.TemporaryDirectory(prefix="conversa-openai-bench-") as tmp, \
            valkey_server(Path(tmp)) as redis_url, \
            FakeOpenAI(requests_per_window=requests_per_window,
                       tokens_per_window=tokens_per_window, window_seconds=args.window) as fake:
        options = {
            "redis_url": redis_url, "name": f"bench-{uuid.uuid4().hex[:8]}",
            "requests_per_window": requests_per_window, "tokens_per_window": tokens_per_window,
            "window": args.window, "allowance": args.allowance, "api_key": fake.api_key,
            "base_url": fake.base_url, "dimension": args.dimension, "seconds": args.seconds,
            "texts_per_call": args.texts_per_call, "words_per_text": args.words_per_text,
        }
        start_at = time.time() + 5.0  # every process imported and ready
        context = multiprocessing.get_context("spawn")
        with context.Pool(args.processes) as pool:
            results = pool.starmap(worker, [(options, seed, start_at)
                                            for seed in range(args.processes)])
        records = fake.records()

    admitted = [r for r in records if r.admitted]
    minutes = args.seconds / 60
    requests_per_minute = len(admitted) / minutes
    tokens_per_minute = sum(r.tokens for r in admitted) / minutes
    peak_requests, peak_tokens = window_peaks(admitted, args.window)
    rejected = sum(1 for r in records if r.status == 429)
    print(f"{args.processes} processes x {args.seconds:g} s, caps {args.rpm} requests/min and "
          f"{args.tpm} tokens/min over a sliding {args.window:g} s window "
          f"({requests_per_window} requests, {tokens_per_window} tokens)")
    print(f"embeddings:            {sum(r['embedded'] for r in results)} "
          f"in {len(admitted)} requests")
    print(f"embeddings per request: {sum(r.inputs for r in admitted) / max(1, len(admitted)):.1f}"
          f" (~{sum(r.tokens for r in admitted) / max(1, len(admitted)):.0f} tokens each)")
    print(f"requests per minute:   {requests_per_minute:.0f} = "
          f"{requests_per_minute / args.rpm:.1%} of the cap")
    print(f"tokens per minute:     {tokens_per_minute:.0f} = "
          f"{tokens_per_minute / args.tpm:.1%} of the cap")
    print(f"busiest {args.window:g} s window:  {peak_requests}/{requests_per_window} requests, "
          f"{peak_tokens}/{tokens_per_window} tokens")
    print(f"429s answered:         {rejected}; transient errors in the workers: "
          f"{sum(r['transient'] for r in results)}")


if __name__ == "__main__":
    main()
