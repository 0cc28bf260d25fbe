"""A fake OpenAI-compatible HTTP server for tests: embeddings and chat completions, with OpenAI's
request limits, error shapes, Bearer auth, injected faults and its own rate caps.

- ``POST /v1/embeddings``: deterministic vectors (a signed hashed bag of words, L2-normalised)
  in ``dimensions`` (text-embedding-3 only) or the model's size, as floats or base64 float32;
  400 for more than 2,048 inputs, an input over 8,192 tokens, more than 300,000 tokens in the
  request or an empty string, counted with the same offline tokenizer the adapters use.
- ``POST /v1/chat/completions``: ``{"keywords": [...]}`` from the most frequent words of the last
  user message (with mixed case and a duplicate, so callers must normalise), or the raw answers
  queued with :meth:`FakeOpenAI.answer_chat_with` (malformed, hostile, refusals).
- Every call needs ``Authorization: Bearer <api_key>`` (401 otherwise; the message echoes the
  key it was given, so tests can check that callers never repeat it).
- :meth:`FakeOpenAI.fail_next` answers 429 (with Retry-After) or 500 for the next N calls and
  :meth:`FakeOpenAI.slow_next` delays the next N answers.
- With ``requests_per_window`` / ``tokens_per_window`` it admits at most that many requests and
  tokens in any sliding ``window_seconds`` and answers 429 with Retry-After beyond them. Tokens
  are counted as OpenAI's limiter estimates them: embedding inputs; chat prompt plus
  ``max_completion_tokens``.

Every request is recorded (:class:`RecordedRequest`) so tests can assert on what was sent and
that nobody went over the caps (:func:`window_peaks`).
"""

import base64
import hashlib
import json
import math
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adapters.openai.tokens import TokenCounter
from tests.support.loopback_http import KeepAliveHandler, LoopbackHttpServer

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000
MAX_BODY_BYTES = 64 * 1024 * 1024
EMBEDDING_MODELS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
CHAT_MODELS = frozenset({"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1-nano"})
#: Chat-format tokens per message and for the reply's priming (as the adapters count them).
TOKENS_PER_MESSAGE = 4
REPLY_PRIMING_TOKENS = 3
DEFAULT_API_KEY = "sk-fake-0123456789abcdefghij"

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it. ``admitted`` requests count against the caps."""

    path: str
    arrived: float  # time.monotonic() at arrival
    status: int
    outcome: str  # ok, unauthorized, invalid, injected, rate-limited, not-found
    model: str | None = None
    inputs: int = 0
    tokens: int = 0
    dimensions: int | None = None
    body: dict[str, Any] | None = None
    admitted: bool = False


@dataclass(frozen=True)
class ChatAnswer:
    """A raw chat answer to serve instead of the computed keywords."""

    content: str | None
    refusal: str | None = None
    finish_reason: str = "stop"


@dataclass
class _Fault:
    status: int | None = None  # 429 or 500; None for a slow answer only
    retry_after: float | None = None
    delay: float = 0.0


@dataclass
class _State:
    records: list[RecordedRequest] = field(default_factory=list)
    faults: deque[_Fault] = field(default_factory=deque)
    chat_answers: deque[ChatAnswer] = field(default_factory=deque)
    admitted: deque[tuple[float, int]] = field(default_factory=deque)
    counter: int = 0


def fake_embedding(text: str, dimension: int) -> list[float]:
    """The fake's vector of ``text``: words hashed to signed buckets, L2-normalised."""
    vector = np.zeros(dimension, dtype=np.float64)
    words = _WORD.findall(text.lower()) or [text]
    for word in words:
        digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        value = int.from_bytes(digest, "big")
        vector[value % dimension] += 1.0 if (value >> 63) & 1 else -1.0
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:  # words cancelled out: a fixed direction rather than a zero vector
        vector[0], norm = 1.0, 1.0
    return [float(v) for v in vector / norm]


def fake_keywords(text: str, count: int) -> list[str]:
    """The fake's keyword answer: frequent words of 4+ letters, some capitalised, the first
    repeated in upper case (so callers must lower-case and deduplicate)."""
    counts = Counter(w for w in _WORD.findall(text.lower()) if len(w) >= 4 and w.isalpha())
    ranked = sorted(counts, key=lambda w: (-counts[w], w))[:count]
    answer = [w.title() if i % 2 else w for i, w in enumerate(ranked)]
    if ranked:
        answer.insert(1, ranked[0].upper())
    return answer


def window_peaks(records: Iterable[RecordedRequest], window: float) -> tuple[int, int]:
    """The most requests and the most tokens among ``records`` in any ``window`` seconds
    (half-open windows ending at each arrival)."""
    events = sorted((r.arrived, r.tokens) for r in records)
    peak_requests = peak_tokens = 0
    start = 0
    tokens = 0
    for end, (arrived, cost) in enumerate(events):
        tokens += cost
        while events[start][0] <= arrived - window:
            tokens -= events[start][1]
            start += 1
        peak_requests = max(peak_requests, end - start + 1)
        peak_tokens = max(peak_tokens, tokens)
    return peak_requests, peak_tokens


class _ServedError(Exception):
    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None, outcome: str = "invalid") -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        self.headers = headers or {}
        self.outcome = outcome


class FakeOpenAI(LoopbackHttpServer):
    """The fake server; a context manager that serves on a free loopback port."""

    thread_name = "fake-openai"

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        requests_per_window: int | None = None,
        tokens_per_window: int | None = None,
        window_seconds: float = 60.0,
        shuffle_embeddings: bool = False,
        keep_bodies: bool = False,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.requests_per_window = requests_per_window
        self.tokens_per_window = tokens_per_window
        self.window_seconds = window_seconds
        self.shuffle_embeddings = shuffle_embeddings
        self.keep_bodies = keep_bodies
        self._lock = threading.Lock()
        self._state = _State()
        self._counters: dict[str, TokenCounter] = {}

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    # -- steering ---------------------------------------------------------------------------
    def fail_next(self, count: int, status: int = 429, *, retry_after: float | None = 1.0
                  ) -> None:
        """Answer ``status`` (429 or 500) to the next ``count`` calls; a 429 carries
        ``retry-after`` and ``retry-after-ms`` when ``retry_after`` is not None."""
        with self._lock:
            self._state.faults.extend(_Fault(status=status, retry_after=retry_after)
                                      for _ in range(count))

    def slow_next(self, count: int, seconds: float) -> None:
        """Delay the next ``count`` answers by ``seconds`` (then answer normally)."""
        with self._lock:
            self._state.faults.extend(_Fault(delay=seconds) for _ in range(count))

    def answer_chat_with(self, *answers: str | ChatAnswer) -> None:
        """Serve these raw answers (content strings or ChatAnswer) to the next chat calls."""
        with self._lock:
            self._state.chat_answers.extend(
                a if isinstance(a, ChatAnswer) else ChatAnswer(content=a) for a in answers)

    def reset(self) -> None:
        with self._lock:
            self._state = _State()

    # -- inspection -------------------------------------------------------------------------
    def records(self, path: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._state.records if path is None or r.path == path]

    def admitted(self, path: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.records(path) if r.admitted]

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.records() if r.outcome == outcome)

    # -- serving ----------------------------------------------------------------------------
    def counter(self, model: str) -> TokenCounter:
        with self._lock:
            counter = self._counters.get(model)
            if counter is None:
                counter = self._counters[model] = TokenCounter(model)
            return counter

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._state.records.append(record)

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            return self._state.faults.popleft() if self._state.faults else None

    def _next_chat_answer(self) -> ChatAnswer | None:
        with self._lock:
            return self._state.chat_answers.popleft() if self._state.chat_answers else None

    def _request_id(self) -> str:
        with self._lock:
            self._state.counter += 1
            return f"req_fake_{self._state.counter}"

    def _admit(self, now: float, tokens: int) -> None:
        """Count the request against the caps, or raise a 429 saying when it would fit."""
        window = self.window_seconds
        with self._lock:
            admitted = self._state.admitted
            while admitted and admitted[0][0] <= now - window:
                admitted.popleft()
            used_tokens = sum(cost for _, cost in admitted)
            waits: list[float] = []
            kind = ""
            if self.requests_per_window is not None and \
                    len(admitted) + 1 > self.requests_per_window:
                drop = len(admitted) + 1 - self.requests_per_window
                waits.append(admitted[drop - 1][0] + window - now)
                kind = "requests"
            if self.tokens_per_window is not None and \
                    used_tokens + tokens > self.tokens_per_window:
                kind = kind or "tokens"
                excess = used_tokens + tokens - self.tokens_per_window
                freed = 0
                wait = window
                for arrived, cost in admitted:
                    freed += cost
                    if freed >= excess:
                        wait = arrived + window - now
                        break
                waits.append(wait)
            if waits:
                wait = max(0.001, max(waits))
                raise _ServedError(
                    429, f"Rate limit reached for {kind} per {window:g}s: "
                    f"limit {self.requests_per_window} requests, {self.tokens_per_window} "
                    f"tokens; requested {tokens} tokens. Please try again in {wait:.3f}s.",
                    kind=kind, code="rate_limit_exceeded", outcome="rate-limited",
                    headers={"retry-after": str(max(1, math.ceil(wait))),
                             "retry-after-ms": str(max(1, math.ceil(wait * 1000)))})
            admitted.append((now, tokens))

    def handle(self, path: str, headers: Any, raw: bytes) -> tuple[int, dict[str, Any],
                                                                    dict[str, str]]:
        """Answer one POST: (status, JSON body, extra headers). Records it."""
        arrived = time.monotonic()
        request_id = self._request_id()
        extra = {"x-request-id": request_id}
        model: str | None = None
        inputs = tokens = 0
        dimensions: int | None = None
        body: dict[str, Any] | None = None
        admitted = False
        try:
            auth = headers.get("Authorization", "")
            if auth != f"Bearer {self.api_key}":
                given = auth.removeprefix("Bearer ") or "(none)"
                raise _ServedError(
                    401, f"Incorrect API key provided: {given}. You can find your API key in "
                    "your account settings.", code="invalid_api_key", outcome="unauthorized")
            fault = self._next_fault()
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.status is not None:
                    fault_headers = {}
                    if fault.retry_after is not None:
                        fault_headers = {
                            "retry-after": f"{fault.retry_after:g}",
                            "retry-after-ms": str(int(fault.retry_after * 1000))}
                    if fault.status == 429:
                        raise _ServedError(429, "Rate limit reached (injected).",
                                           kind="requests", code="rate_limit_exceeded",
                                           headers=fault_headers, outcome="injected")
                    raise _ServedError(fault.status, "The server had an error (injected).",
                                       kind="server_error", headers=fault_headers,
                                       outcome="injected")
            try:
                parsed = json.loads(raw)
            except ValueError:
                raise _ServedError(400, "We could not parse the JSON body of your request."
                                   ) from None
            if not isinstance(parsed, dict):
                raise _ServedError(400, "The body of your request must be a JSON object.")
            body = parsed
            model = body.get("model") if isinstance(body.get("model"), str) else None
            if path == "/v1/embeddings":
                texts, dimensions, encoding_format = self._check_embeddings(body)
                inputs = len(texts)
                counts = self.counter(str(model)).count_many(texts)
                tokens = sum(counts)
                self._check_embedding_tokens(counts)
                self._admit(arrived, tokens)
                admitted = True
                answer = self._embeddings(str(model), texts, dimensions, encoding_format,
                                          tokens)
            elif path == "/v1/chat/completions":
                messages, max_completion = self._check_chat(body)
                inputs = len(messages)
                counter = self.counter(str(model))
                prompt = sum(counter.count(m) + TOKENS_PER_MESSAGE for m in messages) \
                    + REPLY_PRIMING_TOKENS
                tokens = prompt + max_completion
                self._admit(arrived, tokens)
                admitted = True
                answer = self._chat(str(model), messages, prompt, counter)
            else:
                raise _ServedError(404, f"Invalid URL (POST {path})", outcome="not-found")
            status, outcome = 200, "ok"
        except _ServedError as exc:
            status, answer, outcome = exc.status, exc.body, exc.outcome
            extra.update(exc.headers)
        self._record(RecordedRequest(
            path=path, arrived=arrived, status=status, outcome=outcome, model=model,
            inputs=inputs, tokens=tokens, dimensions=dimensions,
            body=body if self.keep_bodies else None, admitted=admitted))
        return status, answer, extra

    def _check_embeddings(self, body: dict[str, Any]) -> tuple[list[str], int | None, str]:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _ServedError(400, "you must provide a model parameter", param="model")
        if model not in EMBEDDING_MODELS:
            raise _ServedError(404, f"The model `{model}` does not exist or you do not have "
                               "access to it.", code="model_not_found", outcome="not-found")
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or \
                not all(isinstance(t, str) for t in texts):
            raise _ServedError(400, "'$.input' is invalid: the fake takes a string or a "
                               "non-empty array of strings.", param="input")
        if len(texts) > MAX_INPUTS:
            raise _ServedError(400, f"'$.input' is invalid: an array of {len(texts)} inputs; "
                               f"the maximum is {MAX_INPUTS}.", param="input")
        if any(t == "" for t in texts):
            raise _ServedError(400, "'$.input' is invalid: inputs cannot be empty strings.",
                               param="input")
        dimensions = body.get("dimensions")
        if dimensions is not None:
            if not model.startswith("text-embedding-3"):
                raise _ServedError(400, "This model does not support specifying dimensions.",
                                   param="dimensions")
            if not isinstance(dimensions, int) or isinstance(dimensions, bool) or \
                    not 1 <= dimensions <= EMBEDDING_MODELS[model]:
                raise _ServedError(400, f"Invalid value for 'dimensions' = {dimensions!r}.",
                                   param="dimensions")
        encoding_format = body.get("encoding_format") or "float"
        if encoding_format not in ("float", "base64"):
            raise _ServedError(400, f"Invalid value for 'encoding_format': {encoding_format!r}",
                               param="encoding_format")
        return texts, dimensions, str(encoding_format)

    @staticmethod
    def _check_embedding_tokens(counts: Sequence[int]) -> None:
        for index, count in enumerate(counts):
            if count > MAX_INPUT_TOKENS:
                raise _ServedError(
                    400, f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, "
                    f"however you requested {count} tokens ({count} in your prompt; 0 for the "
                    f"completion) in input {index}. Please reduce your prompt.", param="input")
        total = sum(counts)
        if total > MAX_REQUEST_TOKENS:
            raise _ServedError(
                400, f"Requested {total} tokens, max {MAX_REQUEST_TOKENS} tokens per request",
                code="max_tokens_per_request", param="input")

    def _embeddings(self, model: str, texts: list[str], dimensions: int | None,
                    encoding_format: str, tokens: int) -> dict[str, Any]:
        size = dimensions or EMBEDDING_MODELS[model]
        data = []
        for index, text in enumerate(texts):
            vector = fake_embedding(text, size)
            embedding: Any = vector
            if encoding_format == "base64":
                embedding = base64.b64encode(
                    np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        if self.shuffle_embeddings:
            data.reverse()
            data = data[1::2] + data[0::2]
        return {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @staticmethod
    def _check_chat(body: dict[str, Any]) -> tuple[list[str], int]:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _ServedError(400, "you must provide a model parameter", param="model")
        if model not in CHAT_MODELS:
            raise _ServedError(404, f"The model `{model}` does not exist or you do not have "
                               "access to it.", code="model_not_found", outcome="not-found")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            raise _ServedError(400, "'messages' must be a non-empty array of messages with "
                               "text content.", param="messages")
        limit = body.get("max_completion_tokens", body.get("max_tokens", 0))
        if not isinstance(limit, int) or limit < 0:
            raise _ServedError(400, "Invalid 'max_completion_tokens'.",
                               param="max_completion_tokens")
        return [str(m["content"]) for m in messages], limit

    def _chat(self, model: str, messages: list[str], prompt_tokens: int,
              counter: TokenCounter) -> dict[str, Any]:
        queued = self._next_chat_answer()
        if queued is None:
            queued = ChatAnswer(content=json.dumps({"keywords": fake_keywords(messages[-1], 12)}))
        completion_tokens = counter.count(queued.content or queued.refusal or "")
        created = int(time.time())
        return {
            "id": f"chatcmpl-fake-{created}", "object": "chat.completion", "created": created,
            "model": model,
            "choices": [{"index": 0, "logprobs": None, "finish_reason": queued.finish_reason,
                         "message": {"role": "assistant", "content": queued.content,
                                     "refusal": queued.refusal}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


class _Handler(KeepAliveHandler):
    server_version = "FakeOpenAI/1.0"

    def do_POST(self) -> None:
        fake: FakeOpenAI = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.send_json(413, {"error": {"message": "Request too large", "type":
                                           "invalid_request_error", "param": None,
                                           "code": None}})
            self.close_connection = True
            return
        status, body, headers = fake.handle(self.path.split("?")[0], self.headers,
                                            self.read_body())
        self.send_json(status, body, headers)

    def do_GET(self) -> None:
        self.send_json(404, {"error": {"message": f"Invalid URL (GET {self.path})",
                                       "type": "invalid_request_error", "param": None,
                                       "code": None}})


FakeOpenAI.handler = _Handler


def serve(**options: Any) -> Iterator[FakeOpenAI]:
    """A started fake for a pytest fixture (``yield from serve(...)``)."""
    fake = FakeOpenAI(**options).start()
    try:
        yield fake
    finally:
        fake.stop()
