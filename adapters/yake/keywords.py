"""The KeywordExtractor port on YAKE: statistical, unsupervised and offline keyword extraction.

YAKE scores candidate phrases of one to ``max_ngram`` words (lower is better). This adapter
lower-cases them, drops duplicates, phrases longer than 64 characters and phrases that repeat
one word ("python python"), and returns the best ``max_keywords``.
"""

import threading
from typing import Any

from adapters import metering
from domain.errors import ConfigurationError, PermanentError

#: The longest keyword kept; longer phrases are usually URLs, code or noise.
MAX_KEYWORD_CHARS = 64


class YakeKeywords:
    """YAKE keywords; the extractor is built on first use (one per requested count)."""

    def __init__(self, language: str = "en", max_ngram: int = 2) -> None:
        if max_ngram < 1:
            raise ConfigurationError("YakeKeywords needs max_ngram >= 1")
        self._language = language
        self._max_ngram = max_ngram
        self._extractors: dict[int, Any] = {}  # yake.KeywordExtractor by its ``top``
        self._lock = threading.Lock()

    def _extractor(self, top: int) -> Any:
        extractor = self._extractors.get(top)
        if extractor is None:
            try:
                import yake
            except ImportError as exc:
                raise ConfigurationError(
                    "yake is needed for local keywords: install the local extra "
                    "(pip install 'conversa-ingest[local]')"
                ) from exc
            try:
                extractor = yake.KeywordExtractor(lan=self._language, n=self._max_ngram, top=top)
            except Exception as exc:
                raise ConfigurationError(
                    f"cannot build a YAKE extractor for language {self._language!r}: {exc}"
                ) from exc
            self._extractors[top] = extractor
        return extractor

    def generate_keywords(self, text: str, max_keywords: int = 10) -> list[str]:
        if not isinstance(text, str):
            raise PermanentError("generate_keywords needs a string")
        if max_keywords <= 0 or not text.strip():
            return []
        metering.record(keyword_requests=1, keyword_model="yake")  # local: no tokens billed
        # Ask for more than needed: lower-casing and the filters below drop some.
        top = max_keywords * 2 + 5
        with self._lock:  # YAKE keeps a similarity cache on the extractor: one call at a time
            extractor = self._extractor(top)
            try:
                scored = extractor.extract_keywords(text)
            except Exception as exc:  # YAKE logs and swallows its own errors; this is a net
                raise PermanentError(f"YAKE failed on the text: {exc}") from exc
        keywords: list[str] = []
        seen: set[str] = set()
        for phrase, _score in scored:  # already best (lowest score) first
            words = str(phrase).lower().split()
            if not words:
                continue
            if len(set(words)) == 1:
                words = words[:1]
            keyword = " ".join(words)
            if len(keyword) > MAX_KEYWORD_CHARS or keyword in seen:
                continue
            seen.add(keyword)
            keywords.append(keyword)
            if len(keywords) == max_keywords:
                break
        return keywords
