"""The fake OpenAI server on its own, over plain HTTP: auth, limits, error shapes, injected faults,
its rate caps and its records."""

import base64
import http.client
import json
import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from adapters.openai.tokens import TokenCounter
from tests.support.fake_openai import (
    ChatAnswer,
    FakeOpenAI,
    RecordedRequest,
    fake_embedding,
    fake_keywords,
    window_peaks,
)

CL100K = TokenCounter("text-embedding-3-small")
O200K = TokenCounter("gpt-4o-mini")


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def post(fake: FakeOpenAI, path: str, body: object, *, key: str | None = None
         ) -> tuple[int, dict[str, Any], dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    try:
        headers = {"Content-Type": "application/json",
                   "Authorization": f"Bearer {fake.api_key if key is None else key}"}
        connection.request("POST", path, body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        answer = json.loads(response.read())
        return response.status, answer, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def embed(fake: FakeOpenAI, texts: object, **extra: object
          ) -> tuple[int, dict[str, Any], dict[str, str]]:
    return post(fake, "/v1/embeddings", {"model": "text-embedding-3-small", "input": texts,
                                         **extra})


def chat(fake: FakeOpenAI, text: str, max_completion_tokens: int = 100
         ) -> tuple[int, dict[str, Any], dict[str, str]]:
    return post(fake, "/v1/chat/completions", {
        "model": "gpt-4o-mini", "max_completion_tokens": max_completion_tokens,
        "messages": [{"role": "system", "content": "keywords please"},
                     {"role": "user", "content": text}]})


def test_auth_is_required_and_the_error_is_openai_shaped(fake: FakeOpenAI) -> None:
    status, body, headers = post(
        fake, "/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"},
        key="sk-wrong-1234567890")
    assert status == 401
    assert body["error"]["code"] == "invalid_api_key"
    assert "sk-wrong-1234567890" in body["error"]["message"]  # echoed: callers must redact
    assert headers["x-request-id"].startswith("req_fake_")
    assert fake.records()[0].outcome == "unauthorized"


def test_embeddings_are_deterministic_normalised_and_sized(fake: FakeOpenAI) -> None:
    status, body, _ = embed(fake, ["hello world", "other words"])
    assert status == 200
    assert [d["index"] for d in body["data"]] == [0, 1]
    first = body["data"][0]["embedding"]
    assert len(first) == 1536
    assert math.isclose(math.fsum(v * v for v in first), 1.0, rel_tol=1e-9)
    assert first == fake_embedding("hello world", 1536)
    assert body["usage"]["prompt_tokens"] == 4
    _, small, _ = embed(fake, "hello world", dimensions=64, encoding_format="base64")
    decoded = np.frombuffer(base64.b64decode(small["data"][0]["embedding"]), dtype="<f4")
    assert decoded.shape == (64,)
    assert np.allclose(decoded, fake_embedding("hello world", 64), atol=1e-7)
    assert fake.records()[-1].dimensions == 64


def test_shuffled_answers_still_carry_their_index() -> None:
    with FakeOpenAI(shuffle_embeddings=True) as fake:
        _, body, _ = embed(fake, [f"text {i}" for i in range(6)])
    assert [d["index"] for d in body["data"]] != list(range(6))
    assert sorted(d["index"] for d in body["data"]) == list(range(6))
    for item in body["data"]:
        assert item["embedding"] == fake_embedding(f"text {item['index']}", 1536)


@pytest.mark.parametrize(("texts", "extra", "status", "message"), [
    (["x"] * 2049, {}, 400, "maximum is 2048"),
    (["ok", "word " * 8200], {}, 400, "maximum context length is 8192"),
    (["word " * 8000] * 38, {}, 400, "max 300000 tokens per request"),
    (["fine", ""], {}, 400, "empty strings"),
    ([], {}, 400, "non-empty array"),
    (["x"], {"dimensions": 4000}, 400, "dimensions"),
    (["x"], {"model": "text-embedding-ada-002", "dimensions": 8}, 400, "does not support"),
    (["x"], {"model": "text-embedding-9"}, 404, "does not exist"),
])
def test_embedding_limits_answer_openai_errors(
    fake: FakeOpenAI, texts: list[str], extra: dict[str, object], status: int, message: str
) -> None:
    got, body, _ = embed(fake, texts, **extra)
    assert got == status
    assert message in body["error"]["message"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert not fake.records()[-1].admitted


def test_the_largest_legal_request_passes(fake: FakeOpenAI) -> None:
    status, body, _ = embed(fake, ["word " * 8000] * 37 + ["x"] * 2011, dimensions=8)
    assert status == 200
    assert len(body["data"]) == 2048
    tokens = fake.records()[-1].tokens
    assert tokens == 37 * CL100K.count("word " * 8000) + 2011
    assert 290_000 < tokens <= 300_000


def test_injected_faults_come_in_order_then_stop(fake: FakeOpenAI) -> None:
    fake.fail_next(1, 429, retry_after=0.25)
    fake.fail_next(1, 500, retry_after=None)
    fake.slow_next(1, 0.4)
    status, body, headers = embed(fake, "x")
    assert status == 429
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("0.25", "250")
    assert body["error"]["code"] == "rate_limit_exceeded"
    status, body, headers = embed(fake, "x")
    assert status == 500
    assert "retry-after" not in headers
    assert body["error"]["type"] == "server_error"
    started = time.monotonic()
    assert embed(fake, "x")[0] == 200
    assert time.monotonic() - started >= 0.4
    assert embed(fake, "x")[0] == 200
    assert [r.outcome for r in fake.records()] == ["injected", "injected", "ok", "ok"]


def test_the_request_cap_answers_429_until_the_window_moves() -> None:
    with FakeOpenAI(requests_per_window=3, window_seconds=0.6) as fake:
        assert [embed(fake, "x")[0] for _ in range(3)] == [200, 200, 200]
        status, body, headers = embed(fake, "x")
        assert status == 429
        assert body["error"]["type"] == "requests"
        wait = int(headers["retry-after-ms"]) / 1000
        assert 0 < wait <= 0.6
        time.sleep(wait + 0.02)
        assert embed(fake, "x")[0] == 200
        assert fake.count("rate-limited") == 1
        assert window_peaks(fake.admitted(), 0.6)[0] <= 3


def test_the_token_cap_counts_inputs_and_chat_completions() -> None:
    O200K.count("load the vocabulary before the clock matters")
    with FakeOpenAI(tokens_per_window=1000, window_seconds=1.0) as fake:
        assert embed(fake, ["word " * 300])[0] == 200  # 300 tokens
        status, _, _ = chat(fake, "word " * 100, max_completion_tokens=200)
        assert status == 200
        prompt = O200K.count("keywords please") + O200K.count("word " * 100)
        # Per message 4, priming 3, the prompt, and the most the answer may take.
        assert fake.records()[-1].tokens == 2 * 4 + 3 + prompt + 200
        status, body, headers = embed(fake, ["word " * 500])
        assert status == 429
        assert body["error"]["type"] == "tokens"
        time.sleep(int(headers["retry-after-ms"]) / 1000 + 0.02)
        assert embed(fake, ["word " * 500])[0] == 200
        peak_requests, peak_tokens = window_peaks(fake.admitted(), 1.0)
        assert peak_tokens <= 1000
        assert peak_requests >= 1


def test_chat_answers_keywords_or_what_it_was_told(fake: FakeOpenAI) -> None:
    status, body, _ = chat(fake, "Celery celery workers workers workers queue")
    assert status == 200
    message = body["choices"][0]["message"]
    assert json.loads(message["content"]) == {
        "keywords": ["workers", "WORKERS", "Celery", "queue"]}
    assert body["usage"]["completion_tokens"] > 0
    fake.answer_chat_with("not json", ChatAnswer(content=None, refusal="no"))
    assert chat(fake, "x")[1]["choices"][0]["message"]["content"] == "not json"
    refused = chat(fake, "x")[1]["choices"][0]["message"]
    assert (refused["content"], refused["refusal"]) == (None, "no")
    assert post(fake, "/v1/chat/completions", {"model": "gpt-9", "messages": []})[0] == 404
    assert post(fake, "/v1/unknown", {})[0] == 404


def test_fake_keywords_and_window_peaks() -> None:
    assert fake_keywords("alpha alpha beta gamma gamma gamma tiny", 3) == [
        "gamma", "GAMMA", "Alpha", "beta"]
    events = [RecordedRequest(path="", arrived=t, status=200, outcome="ok", tokens=n)
              for t, n in [(0.0, 5), (0.5, 5), (0.99, 10), (1.0, 1), (2.5, 50)]]
    assert window_peaks(events, 1.0) == (3, 50)
    assert window_peaks(events, 0.4) == (2, 50)
    assert window_peaks([], 1.0) == (0, 0)
