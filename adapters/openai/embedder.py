"""The Embedder port on OpenAI's embeddings API (or any OpenAI-compatible server via ``base_url``).

Requests stay within the API's limits: at most 2,048 inputs and 300,000 tokens per request
(and no more tokens than the rate limiter's bucket holds), counted with the model's own
tokenizer offline (``adapters.openai.tokens``). An input over 8,192 tokens is refused with a
PermanentError naming its index before anything is sent: truncating would store a vector of
part of a chunk whose full text is kept and searched, silently (the failure mode the local
MiniLM model has); an over-long chunk means the chunking settings are wrong, and the job
should say so. An empty text is sent as one space (the API refuses empty strings).

``dimensions`` is sent for the text-embedding-3 models (which shorten their vectors on the
server); every answer is checked (one vector per input, each index once, the dimension),
re-ordered by ``index`` and L2-normalised. Retries, rate limiting and error translation are
``adapters.openai.client``'s.
"""

import functools
import math
from collections.abc import Sequence
from typing import Unpack

from openai import OpenAI
from openai.types import CreateEmbeddingResponse

from adapters import metering
from adapters.openai.client import CallerOptions, caller
from adapters.openai.tokens import TokenCounter
from domain.errors import ConfigurationError, PermanentError

#: The API's limits (https://platform.openai.com/docs/api-reference/embeddings/create).
MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000
MAX_TOKENS_PER_INPUT = 8192

#: Native dimensions of OpenAI's embedding models.
NATIVE_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def supports_dimensions(model: str) -> bool:
    """Whether the model accepts ``dimensions`` (text-embedding-3 and later)."""
    return model.startswith("text-embedding-3")


class OpenAIEmbedder:
    """OpenAI embeddings: batched within the limits, rate limited, retried, checked."""

    def __init__(
        self,
        api_key: str,
        model: str = "text-embedding-3-small",
        dimension: int = 1536,
        *,
        send_dimensions: bool | None = None,
        encoding: str | None = None,
        max_inputs_per_request: int = MAX_INPUTS_PER_REQUEST,
        max_tokens_per_request: int = MAX_TOKENS_PER_REQUEST,
        max_tokens_per_input: int = MAX_TOKENS_PER_INPUT,
        **options: Unpack[CallerOptions],
    ) -> None:
        native = NATIVE_DIMENSIONS.get(model)
        if dimension < 1 or (native is not None and dimension > native):
            raise ConfigurationError(
                f"embedding dimension {dimension} is not possible for {model} "
                f"(1..{native or 'its size'})")
        if send_dimensions is None:
            send_dimensions = supports_dimensions(model)
        if native is not None and dimension != native and not send_dimensions:
            raise ConfigurationError(
                f"{model} gives {native}-dimensional vectors and cannot be asked for {dimension}")
        request_tokens = min(max_tokens_per_request, MAX_TOKENS_PER_REQUEST)
        limiter = options.get("limiter")
        if limiter is not None:
            request_tokens = min(request_tokens, limiter.max_tokens_per_request)
        if request_tokens < max_tokens_per_input:
            raise ConfigurationError(
                f"a request may carry only {request_tokens} tokens (the rate limiter's bucket "
                f"or max_tokens_per_request), less than one input of {max_tokens_per_input}: "
                "raise the OpenAI tokens-per-minute setting")
        if not 1 <= max_inputs_per_request <= MAX_INPUTS_PER_REQUEST:
            raise ConfigurationError(
                f"max_inputs_per_request must be 1..{MAX_INPUTS_PER_REQUEST}")
        self._model = model
        self._dimension = dimension
        self._send_dimensions = send_dimensions
        self._max_inputs = max_inputs_per_request
        self._max_request_tokens = request_tokens
        self._max_input_tokens = max_tokens_per_input
        self._tokens = TokenCounter(model, encoding=encoding)
        self._caller = caller(api_key, options)

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def model_name(self) -> str:
        return f"openai-{self._model}-{self._dimension}"

    @property
    def max_input_tokens(self) -> int:
        return self._max_input_tokens

    def count_tokens(self, text: str) -> int:
        """The model's tokens in ``text`` (tiktoken, offline); the API adds none."""
        return self._tokens.count(text)

    @property
    def max_tokens_per_request(self) -> int:
        return self._max_request_tokens

    def batches(self, texts: Sequence[str]) -> list[tuple[int, int, int]]:
        """(first, end, tokens) of each request: consecutive inputs within the limits.

        Raises PermanentError naming the first input over the per-input limit.
        """
        counts = self._tokens.count_many(texts)
        for index, count in enumerate(counts):
            if count > self._max_input_tokens:
                raise PermanentError(
                    f"input {index} has {count} tokens, over {self._model}'s limit of "
                    f"{self._max_input_tokens} per input: make chunks smaller")
        spans: list[tuple[int, int, int]] = []
        first, tokens = 0, 0
        for index, count in enumerate(counts):
            if index > first and (index - first == self._max_inputs
                                  or tokens + count > self._max_request_tokens):
                spans.append((first, index, tokens))
                first, tokens = index, 0
            tokens += count
        if counts:
            spans.append((first, len(counts), tokens))
        return spans

    def generate_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise PermanentError("generate_embeddings needs a sequence of strings")
        inputs = [text if text else " " for text in texts]
        vectors: list[list[float]] = []
        for first, end, tokens in self.batches(inputs):
            batch = inputs[first:end]
            response = self._caller.call(
                "OpenAI embeddings", tokens, functools.partial(self._create, batch=batch))
            vectors.extend(self._vectors(response, len(batch), first))
            billed = getattr(response.usage, "prompt_tokens", None) if response.usage else None
            metering.record(embed_requests=1, embed_model=self._model,
                            embed_tokens=billed if isinstance(billed, int) else tokens)
        return vectors

    def _create(self, client: OpenAI, batch: list[str]) -> CreateEmbeddingResponse:
        if self._send_dimensions:
            return client.embeddings.create(
                model=self._model, input=batch, dimensions=self._dimension)
        return client.embeddings.create(model=self._model, input=batch)

    def _vectors(self, response: CreateEmbeddingResponse, expected: int, first: int
                 ) -> list[list[float]]:
        data = list(response.data or [])
        by_index = {item.index: item.embedding for item in data}
        if len(data) != expected or sorted(by_index) != list(range(expected)):
            raise PermanentError(
                f"OpenAI embeddings: {len(data)} vectors with indices {sorted(by_index)[:5]}... "
                f"for {expected} inputs")
        vectors = []
        for index in range(expected):
            vector = [float(v) for v in by_index[index]]
            if len(vector) != self._dimension:
                raise PermanentError(
                    f"OpenAI embeddings: input {first + index} got {len(vector)} dimensions, "
                    f"expected {self._dimension}")
            norm = math.sqrt(math.fsum(v * v for v in vector))
            if not math.isfinite(norm) or norm == 0.0:
                raise PermanentError(
                    f"OpenAI embeddings: input {first + index} got a zero or non-finite vector")
            vectors.append([v / norm for v in vector])
        return vectors
