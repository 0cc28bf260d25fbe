"""The OpenAI adapters through the real SDK against the fake OpenAI server, the offline tokenizer,
and the Redis rate limiter across processes."""

import itertools
import json
import math
import os
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.openai.client import parse_retry_after
from adapters.openai.embedder import OpenAIEmbedder
from adapters.openai.keywords import OpenAIKeywords, clean_keywords
from adapters.openai.tokens import ENCODING_SPECS, TokenCounter, get_encoding
from adapters.ports import Embedder, KeywordExtractor
from adapters.redis.rate_limit import RedisRateLimiter
from domain.errors import ConfigurationError, PermanentError, TransientError
from tests.support.fake_openai import (
    ChatAnswer,
    FakeOpenAI,
    RecordedRequest,
    fake_embedding,
    window_peaks,
)
from tests.support.sockets import connections_to, new_connections_in_a_fork, port_of

ROOT = Path(__file__).resolve().parents[2]
#: Quick retries for tests: the policy's shape, not its production timings.
FAST: dict[str, Any] = {"backoff_seconds": 0.01, "max_backoff_seconds": 2.0,
                        "retry_budget_seconds": 10.0, "timeout": 5.0}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def embedder(fake: FakeOpenAI, **options: Any) -> OpenAIEmbedder:
    settings: dict[str, Any] = {**FAST, "base_url": fake.base_url, **options}
    return OpenAIEmbedder(settings.pop("api_key", fake.api_key), **settings)


def keywords(fake: FakeOpenAI, **options: Any) -> OpenAIKeywords:
    settings: dict[str, Any] = {**FAST, "base_url": fake.base_url, **options}
    return OpenAIKeywords(settings.pop("api_key", fake.api_key), **settings)


def run_children(script: str, args: list[list[str]], timeout: float = 120) -> list[Any]:
    """Run ``script`` in one Python process per argument list, at once; their JSON outputs."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, *a], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for a in args]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err[-3000:]
        outputs.append(json.loads(out))
    return outputs


# -- the offline tokenizer ---------------------------------------------------------------------

def test_token_counts_are_tiktokens_own_ids() -> None:
    assert TokenCounter("text-embedding-3-small").encode("hello world") == [15339, 1917]
    assert TokenCounter("text-embedding-3-large").encoding_name == "cl100k_base"
    assert TokenCounter("gpt-4o-mini").encode("hello world") == [24912, 2375]
    assert TokenCounter("some-local-model").encoding_name == "cl100k_base"
    counter = TokenCounter("text-embedding-3-small")
    text = "Zürich naïve 中文 🎉 <|endoftext|> def f(x): return x**2\n\n  tabs\tand spaces"
    tokens = counter.encode(text)
    assert counter.encoding.decode(tokens) == text
    assert counter.count_many([text, "", "hello world"]) == [len(tokens), 0, 2]


def test_offline_encodings_match_tiktokens_definitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our split patterns, special tokens and file hashes equal tiktoken's own (whose
    constructors would download): its loader is replaced by one that only records."""
    import tiktoken_ext.openai_public as openai_public  # type: ignore[import-untyped]

    asked: list[tuple[str, str | None]] = []

    def no_download(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        asked.append((url, expected_hash))
        return {}

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", no_download)
    for name, spec in ENCODING_SPECS.items():
        definition = getattr(openai_public, name)()
        assert definition["pat_str"] == spec.pat_str
        assert definition["special_tokens"] == spec.special_tokens
        assert asked[-1][1] == spec.sha256
        assert asked[-1][0].endswith(f"/{name}.tiktoken")
        assert len(get_encoding(name)._mergeable_ranks) > 100_000


def test_truncation_keeps_a_whole_character_prefix() -> None:
    counter = TokenCounter("gpt-4o-mini")
    text = "héllo wörld 中文字符 " * 200
    for budget in (1, 3, 7, 50):
        cut = counter.truncate(text, budget)
        assert text.startswith(cut)
        assert counter.count(cut) <= budget
    assert counter.truncate("short", 100) == "short"
    assert counter.truncate("short", 0) == ""


_OFFLINE_CHILD = r"""
import json, os, sys

def block_network(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        raise OSError(f"network blocked in this test: {event}")

sys.addaudithook(block_network)
from adapters.openai.tokens import TokenCounter

result = {
    "small": TokenCounter("text-embedding-3-small").encode("hello world"),
    "mini": TokenCounter("gpt-4o-mini").count("The quick brown fox jumps over the lazy dog"),
}
import tiktoken
try:
    tiktoken.get_encoding("cl100k_base")
    result["control"] = "tiktoken loaded its encoding"
except Exception as exc:
    result["control"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(result))
"""


def test_token_counting_works_with_no_network(tmp_path: Path) -> None:
    """In a process whose every connect and DNS lookup fails, with an empty tiktoken cache and
    proxies pointing nowhere, our counter works, and tiktoken's own loader (the control) does
    not."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TIKTOKEN_CACHE_DIR": str(cache),
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    done = subprocess.run([sys.executable, "-c", _OFFLINE_CHILD], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout)
    assert result["small"] == [15339, 1917]
    assert result["mini"] == 9
    assert "network blocked" in result["control"]
    assert list(cache.iterdir()) == []


# -- the embedder ------------------------------------------------------------------------------

def test_embedder_keeps_the_port_and_the_order(fake: FakeOpenAI) -> None:
    fake.shuffle_embeddings = True
    adapter = embedder(fake, dimension=256)
    assert isinstance(adapter, Embedder)
    assert adapter.dimension == 256
    texts = [f"document {i} about topic {i % 7} and words {i * 13}" for i in range(40)] + [""]
    vectors = adapter.generate_embeddings(texts)
    assert len(vectors) == len(texts)
    for text, vector in zip(texts, vectors, strict=True):
        assert len(vector) == 256
        assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-6)
        expected = fake_embedding(text or " ", 256)
        assert max(abs(a - b) for a, b in zip(vector, expected, strict=True)) < 1e-6
    [record] = fake.records()
    assert (record.status, record.inputs, record.dimensions) == (200, 41, 256)
    assert adapter.generate_embeddings([]) == []


def test_dimensions_only_for_models_that_take_them(fake: FakeOpenAI) -> None:
    assert len(embedder(fake).generate_embeddings(["a b c"])[0]) == 1536
    assert len(embedder(fake, model="text-embedding-3-large", dimension=3072)
               .generate_embeddings(["a b c"])[0]) == 3072
    ada = embedder(fake, model="text-embedding-ada-002", dimension=1536)
    assert len(ada.generate_embeddings(["a b c"])[0]) == 1536
    assert [r.dimensions for r in fake.records()] == [1536, 3072, None]
    with pytest.raises(ConfigurationError):
        embedder(fake, model="text-embedding-ada-002", dimension=256)
    with pytest.raises(ConfigurationError):
        embedder(fake, dimension=4096)


def test_batches_stay_within_the_api_limits_under_big_inputs(fake: FakeOpenAI) -> None:
    adapter = embedder(fake, dimension=16)
    many = [f"short text {i}" for i in range(5000)]
    assert len(adapter.generate_embeddings(many)) == 5000
    big = [(f"chunk{i} " + "lorem ipsum dolor sit amet " * 1590) for i in range(80)]
    counts = TokenCounter("text-embedding-3-small").count_many(big)
    assert min(counts) > 7500
    assert max(counts) <= 8192
    assert sum(counts) > 600_000
    vectors = adapter.generate_embeddings(big)
    assert len(vectors) == 80
    assert vectors[0] != vectors[1]
    records = fake.records()
    assert all(r.status == 200 for r in records), [r for r in records if r.status != 200]
    assert [r.inputs for r in records[:3]] == [2048, 2048, 904]
    assert sum(r.inputs for r in records[3:]) == 80
    assert len(records) - 3 == math.ceil(sum(counts) / 300_000)
    assert max(r.tokens for r in records) <= 300_000


def test_an_oversize_input_is_refused_before_sending(fake: FakeOpenAI) -> None:
    adapter = embedder(fake, dimension=16)
    texts = ["fine", "word " * 9000, "fine too"]
    with pytest.raises(PermanentError, match=r"input 1 has 9\d\d\d tokens.*8192"):
        adapter.generate_embeddings(texts)
    assert fake.records() == []


def test_the_fake_refuses_what_the_adapter_would_not_send(fake: FakeOpenAI) -> None:
    """Without the adapter's own checks, the server's 400 becomes a PermanentError."""
    adapter = embedder(fake, dimension=16, max_tokens_per_input=20_000)
    with pytest.raises(PermanentError, match=r"HTTP 400.*maximum context length is 8192"):
        adapter.generate_embeddings(["word " * 9000])
    with pytest.raises(PermanentError, match=r"HTTP 404.*model_not_found"):
        embedder(fake, model="text-embedding-9", dimension=16).generate_embeddings(["x"])


def test_429_with_retry_after_is_retried_and_honoured(fake: FakeOpenAI) -> None:
    fake.fail_next(2, 429, retry_after=0.3)
    started = time.monotonic()
    assert len(embedder(fake, dimension=8).generate_embeddings(["hello"])) == 1
    assert time.monotonic() - started >= 0.6
    records = fake.records()
    assert [r.status for r in records] == [429, 429, 200]
    gaps = [b.arrived - a.arrived for a, b in itertools.pairwise(records)]
    assert min(gaps) >= 0.3


def test_500_and_connection_failures_are_retried(fake: FakeOpenAI) -> None:
    fake.fail_next(3, 500, retry_after=None)
    assert len(embedder(fake, dimension=8).generate_embeddings(["hello"])) == 1
    assert [r.status for r in fake.records()] == [500, 500, 500, 200]
    port = fake.port
    fake.stop()
    dead = OpenAIEmbedder("sk-any-key-0000000000", dimension=8,
                          base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, **FAST)
    with pytest.raises(TransientError, match=r"connection failed.*3 attempt"):
        dead.generate_embeddings(["hello"])


def test_persistent_429_ends_in_a_transient_error_with_retry_after(fake: FakeOpenAI) -> None:
    fake.fail_next(10, 429, retry_after=0.05)
    with pytest.raises(TransientError, match=r"HTTP 429.*3 attempt") as caught:
        embedder(fake, dimension=8, max_retries=2).generate_embeddings(["hello"])
    assert caught.value.retry_after == pytest.approx(0.05)
    assert len(fake.records()) == 3


def test_a_long_retry_after_is_handed_back_not_slept(fake: FakeOpenAI) -> None:
    fake.fail_next(1, 429, retry_after=30)
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        embedder(fake, dimension=8).generate_embeddings(["hello"])
    assert time.monotonic() - started < 2
    assert caught.value.retry_after == pytest.approx(30)
    assert len(fake.records()) == 1


def test_a_slow_answer_times_out_and_is_retried(fake: FakeOpenAI) -> None:
    fake.slow_next(1, 1.0)
    assert len(embedder(fake, dimension=8, timeout=0.3).generate_embeddings(["hello"])) == 1
    fake.slow_next(5, 1.0)
    with pytest.raises(TransientError, match=r"timed out after 0.3s.*2 attempt"):
        embedder(fake, dimension=8, timeout=0.3, max_retries=1).generate_embeddings(["x"])


def test_a_wrong_key_is_permanent_and_never_echoed(fake: FakeOpenAI) -> None:
    secret = "sk-proj-THIS-IS-SECRET-" + uuid.uuid4().hex
    with pytest.raises(PermanentError, match=r"HTTP 401.*invalid_api_key") as caught:
        embedder(fake, api_key=secret, dimension=8).generate_embeddings(["hello"])
    rendered = "".join(traceback.format_exception(caught.value))
    assert secret not in rendered
    assert secret[8:20] not in rendered
    assert fake.records()[0].status == 401
    assert len(fake.records()) == 1
    with pytest.raises(PermanentError, match="HTTP 401") as caught:
        keywords(fake, api_key=secret).generate_keywords("some words here")
    assert secret not in "".join(traceback.format_exception(caught.value))


def test_retry_after_parsing() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},
                             now=1445412470.0) == 10.0
    assert parse_retry_after({"x-ratelimit-reset-requests": "1m30s",
                              "x-ratelimit-reset-tokens": "20ms"}) == 90.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


# -- keywords ----------------------------------------------------------------------------------

TEXT = ("Celery workers ingest documents. Workers embed chunks; celery retries failed tasks. "
        "Documents become vectors, vectors go to Pinecone. Celery celery workers workers.")


def test_keywords_are_lower_case_unique_and_capped(fake: FakeOpenAI) -> None:
    fake.keep_bodies = True
    adapter = keywords(fake)
    assert isinstance(adapter, KeywordExtractor)
    found = adapter.generate_keywords(TEXT, max_keywords=4)
    assert found == ["celery", "workers", "documents", "vectors"]
    assert adapter.generate_keywords("   ") == []
    assert adapter.generate_keywords(TEXT, max_keywords=0) == []
    [record] = fake.records()
    assert record.body is not None
    schema = record.body["response_format"]
    assert schema["type"] == "json_schema"
    assert schema["json_schema"]["strict"] is True
    assert schema["json_schema"]["schema"]["required"] == ["keywords"]
    assert record.body["messages"][-1] == {"role": "user", "content": TEXT}


def test_keyword_input_is_cut_to_the_token_budget(fake: FakeOpenAI) -> None:
    fake.keep_bodies = True
    long_text = "alpha beta gamma delta " * 20_000
    keywords(fake, max_input_tokens=100).generate_keywords(long_text)
    [record] = fake.records()
    assert record.body is not None
    sent = record.body["messages"][-1]["content"]
    assert long_text.startswith(sent)
    assert TokenCounter("gpt-4o-mini").count(sent) <= 100
    assert record.tokens < 100 + 300 + 16 * 10 + 32


@pytest.mark.parametrize("answer", [
    "this is not json",
    '{"keywords": "celery, workers"}',
    '{"kw": ["celery"]}',
    '{"keywords": [1, 2, 3]}',
    '{"keywords": ["celery"], "namespace": "tenant-b", "id": "doc-1"}',
    '["celery", "workers"]',
    '{"keywords": ["celery"]',
    '{"keywords": ["' + "x" * 70_000 + '"]}',
])
def test_malformed_or_hostile_answers_are_refused(fake: FakeOpenAI, answer: str) -> None:
    fake.answer_chat_with(answer)
    with pytest.raises(PermanentError, match="OpenAI keywords: the answer"):
        keywords(fake).generate_keywords(TEXT)


def test_hostile_keywords_are_dropped_and_the_rest_capped(fake: FakeOpenAI) -> None:
    items = ["Good One", "x" * 10_000, "line\nbreak", "bell\x07", "rtl\u202eevil", "  ",
             "GOOD ONE", "tab\tbed", "ok\u00a0spaced", "z" * 65, "é" * 64]
    items += [f"kw{i}" for i in range(500)]
    fake.answer_chat_with(json.dumps({"keywords": items}))
    found = keywords(fake).generate_keywords(TEXT, max_keywords=6)
    assert found == ["good one", "ok spaced", "é" * 64, "kw0", "kw1", "kw2"]
    assert clean_keywords(["A", "a", "B"], 10) == ["a", "b"]


def test_refusals_give_no_keywords_and_cut_answers_are_errors(fake: FakeOpenAI) -> None:
    fake.answer_chat_with(ChatAnswer(content=None, refusal="I can't help with that."),
                          ChatAnswer(content='{"keywords": ["a", "b', finish_reason="length"))
    adapter = keywords(fake)
    assert adapter.generate_keywords(TEXT) == []
    with pytest.raises(PermanentError, match="cut at"):
        adapter.generate_keywords(TEXT)


def test_keywords_share_the_retry_policy(fake: FakeOpenAI) -> None:
    fake.fail_next(1, 429, retry_after=0.1)
    fake.fail_next(1, 500, retry_after=None)
    assert keywords(fake).generate_keywords(TEXT, 2) == ["celery", "workers"]
    assert [r.status for r in fake.records()] == [429, 500, 200]
    fake.fail_next(5, 429, retry_after=0.05)
    with pytest.raises(TransientError) as caught:
        keywords(fake, max_retries=1).generate_keywords(TEXT)
    assert caught.value.retry_after == pytest.approx(0.05)


# -- the Redis rate limiter --------------------------------------------------------------------

def limiter(redis_url: str, **options: Any) -> RedisRateLimiter:
    settings: dict[str, Any] = {"name": f"test-{uuid.uuid4().hex[:8]}",
                                "latency_allowance_seconds": 0.1, **options}
    return RedisRateLimiter(redis_url, **settings)


def test_the_bucket_waits_and_gives_up_past_its_max_wait(redis_url: str) -> None:
    bucket = limiter(redis_url, requests_per_window=10, tokens_per_window=1000,
                     window_seconds=1.0, burst_fraction=0.2)
    assert bucket.max_tokens_per_request == 200
    assert bucket.try_acquire(150) == 0.0
    wait = bucket.try_acquire(150)  # 50 left, 100 more at (1000 - 200) / 1.1 per second
    assert 0.1 < wait < 0.2
    assert bucket.acquire(150) >= 0.1
    with pytest.raises(TransientError) as caught:
        bucket.acquire(200, max_wait=0.01)
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0.01
    with pytest.raises(PermanentError, match="can never pass"):
        bucket.acquire(201)
    with pytest.raises(ConfigurationError):
        limiter(redis_url, requests_per_window=1, tokens_per_window=1000)


_LIMITER_CHILD = r"""
import json, random, sys, time
from adapters.redis.rate_limit import RedisRateLimiter

url, name, start_at, duration, seed = sys.argv[1:6]
limiter = RedisRateLimiter(url, name=name, requests_per_window=20, tokens_per_window=2000,
                           window_seconds=1.0, burst_fraction=0.1,
                           latency_allowance_seconds=0.1)
rng = random.Random(int(seed))
time.sleep(max(0.0, float(start_at) - time.time()))
grants = []
deadline = float(start_at) + float(duration)
while time.time() < deadline:
    cost = rng.randint(20, 150)
    limiter.acquire(cost)
    grants.append([time.time(), cost])
print(json.dumps(grants))
"""


def test_the_bucket_caps_requests_and_tokens_across_processes(redis_url: str) -> None:
    name = f"multi-{uuid.uuid4().hex[:8]}"
    start_at = time.time() + 3.0
    outputs = run_children(_LIMITER_CHILD, [
        [redis_url, name, str(start_at), "3.0", str(seed)] for seed in range(3)])
    grants = [RecordedRequest(path="", arrived=t, status=200, outcome="ok", tokens=cost)
              for output in outputs for t, cost in output]
    assert all(len(output) > 3 for output in outputs)  # every process got its share
    peak_requests, peak_tokens = window_peaks(grants, 1.0)
    assert peak_requests <= 20
    assert peak_tokens <= 2000
    # Not trivially safe: the sustained rate comes close to the cap.
    assert sum(g.tokens for g in grants) >= 0.6 * 2000 * 3.0 or len(grants) >= 0.6 * 20 * 3.0


_EMBEDDER_CHILD = r"""
import json, sys, time
from adapters.openai.embedder import OpenAIEmbedder
from adapters.redis.rate_limit import RedisRateLimiter

url, name, base_url, api_key, start_at, duration = sys.argv[1:7]
limiter = RedisRateLimiter(url, name=name, requests_per_window=12, tokens_per_window=40_000,
                           window_seconds=2.0, burst_fraction=0.25,
                           latency_allowance_seconds=0.1, max_wait_seconds=30)
embedder = OpenAIEmbedder(api_key, dimension=32, base_url=base_url, limiter=limiter,
                          max_inputs_per_request=16, backoff_seconds=0.05)
texts = [f"text {i} " + "ingest pipeline tokens " * 66 for i in range(32)]
time.sleep(max(0.0, float(start_at) - time.time()))
done = 0
deadline = float(start_at) + float(duration)
while time.time() < deadline:
    vectors = embedder.generate_embeddings(texts)
    assert len(vectors) == len(texts) and all(len(v) == 32 for v in vectors)
    done += len(vectors)
print(json.dumps(done))
"""


def test_embedders_in_two_processes_stay_under_the_servers_caps(redis_url: str) -> None:
    with FakeOpenAI(requests_per_window=12, tokens_per_window=40_000, window_seconds=2.0
                    ) as server:
        start_at = time.time() + 3.0
        args = [redis_url, f"embed-{uuid.uuid4().hex[:8]}", server.base_url, server.api_key,
                str(start_at), "4.0"]
        done = run_children(_EMBEDDER_CHILD, [args, args])
        records = server.records()
    assert all(d > 0 for d in done)
    assert server.count("rate-limited") == 0, [r for r in records if r.status != 200][:3]
    assert all(r.status == 200 for r in records)
    peak_requests, peak_tokens = window_peaks(records, 2.0)
    assert peak_requests <= 12
    assert peak_tokens <= 40_000
    assert sum(done) == sum(r.inputs for r in records)


def test_clients_are_made_again_in_a_forked_child(fake: FakeOpenAI, redis_url: str) -> None:
    """Celery's prefork pool forks after the services exist: a child must not share the
    parent's sockets, so the SDK client and the Redis client are made again per process."""
    ports = (port_of(fake.base_url), port_of(redis_url))
    before = [connections_to(port) for port in ports]
    bucket = limiter(redis_url, requests_per_window=100, tokens_per_window=100_000)
    adapter = embedder(fake, dimension=8, limiter=bucket)
    adapter.generate_embeddings(["from the parent"])
    parent = [connections_to(port) - old for port, old in zip(ports, before, strict=True)]
    assert all(parent)

    def use() -> None:
        assert len(adapter.generate_embeddings(["from the child"])) == 1
        bucket.acquire(10)

    # The child opens a connection of its own to each server instead of sharing the parent's.
    openai_port, redis_port = ports
    assert new_connections_in_a_fork(redis_port, use)
    assert new_connections_in_a_fork(openai_port, use)
    adapter.generate_embeddings(["from the parent again"])
    bucket.acquire(10)
    assert [connections_to(port) - old
            for port, old in zip(ports, before, strict=True)] == parent  # the parent keeps its own
    assert [r.status for r in fake.records()] == [200, 200, 200, 200]
