"""The chunker: token-aware structural chunks (``chunk_document``), never mid-word."""

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from domain.documents import Chunk
from domain.parsing import ParsedDocument

_WORD = re.compile(r"\S+")


#: A sentence ends at . ! ? (optionally closed by quotes or brackets) followed by space.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
#: Counts within this share of the limit are checked with the tokenizer on the joined text.
_EXACT_MARGIN = 0.9


@dataclass(frozen=True)
class _Unit:
    """A span of text the packer never splits: a sentence, a run of words, or a word."""

    start: int
    end: int
    tokens: int
    paragraph: int


def chunk_document(
    doc_id: str,
    parsed: ParsedDocument,
    count_tokens: Callable[[str], int],
    *,
    max_tokens: int,
    overlap_tokens: int,
) -> list[Chunk]:
    """Chunks of at most ``max_tokens`` tokens as ``count_tokens`` counts them (the
    embedder's own tokenizer), neighbours sharing up to ``overlap_tokens`` tokens of whole
    sentences or words.

    Structure first: a chunk never crosses a page or section start; inside one it ends at a
    paragraph break when the next paragraph does not fit, else at a sentence end, else between
    words. Only a single "word" longer than the limit on its own (a long URL, base64) is cut
    inside. Each chunk's text is ``parsed.text[start:end]``.
    """
    if max_tokens < 1 or not 0 <= overlap_tokens < max_tokens:
        raise ValueError("need max_tokens >= 1 and 0 <= overlap_tokens < max_tokens")
    base = count_tokens("")  # tokens every call adds ([CLS] and [SEP] for BERT models)
    if base >= max_tokens:
        raise ValueError(f"the tokenizer adds {base} tokens to any text, over {max_tokens}")
    packer = _Packer(parsed.text, count_tokens, base, max_tokens, overlap_tokens)
    edges = [0, *parsed.boundaries(), len(parsed.text)]
    spans: list[tuple[int, int]] = []
    for first, last in itertools.pairwise(edges):
        spans.extend(packer.pack(packer.units(first, last)))
    return [
        Chunk(document_id=doc_id, index=index, text=parsed.text[start:end], start=start,
              end=end, page=parsed.page_at(start), section=parsed.section_at(start))
        for index, (start, end) in enumerate(spans)
    ]


class _Packer:
    def __init__(self, text: str, count: Callable[[str], int], base: int, limit: int,
                 overlap: int) -> None:
        self._text, self._count, self._base = text, count, base
        self._limit, self._overlap = limit, overlap

    def _cost(self, start: int, end: int) -> int:
        """Tokens of the span without the tokenizer's fixed additions."""
        return self._count(self._text[start:end]) - self._base

    def _fits(self, start: int, end: int) -> bool:
        return self._count(self._text[start:end]) <= self._limit

    def units(self, first: int, last: int) -> list[_Unit]:
        units: list[_Unit] = []
        paragraph_start = first
        breaks = _PARAGRAPH_BREAK.finditer(self._text, first, last)
        ends = [(m.start(), m.end()) for m in breaks] + [(last, last)]
        for paragraph, (para_end, next_start) in enumerate(ends):
            for start, end in _sentences(self._text, paragraph_start, para_end):
                units.extend(self._split(start, end, paragraph))
            paragraph_start = next_start
        return units

    def _split(self, start: int, end: int, paragraph: int) -> list[_Unit]:
        """The sentence as one unit if it fits, else its words (cut only if one is too long)."""
        cost = self._cost(start, end)
        if cost + self._base <= self._limit:
            return [_Unit(start, end, cost, paragraph)]
        units: list[_Unit] = []
        for word in _WORD.finditer(self._text, start, end):
            word_cost = self._cost(word.start(), word.end())
            if word_cost + self._base <= self._limit:
                units.append(_Unit(word.start(), word.end(), word_cost, paragraph))
            else:
                units.extend(self._cut_word(word.start(), word.end(), paragraph))
        return units

    def _cut_word(self, start: int, end: int, paragraph: int) -> list[_Unit]:
        """A word longer than the limit, cut into the longest pieces that fit."""
        units = []
        while start < end:
            low, high = start + 1, end  # the longest prefix that fits, by bisection
            while low < high:
                middle = (low + high + 1) // 2
                if self._fits(start, middle):
                    low = middle
                else:
                    high = middle - 1
            units.append(_Unit(start, low, self._cost(start, low), paragraph))
            start = low
        return units

    def pack(self, units: list[_Unit]) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        current: list[_Unit] = []
        tokens = 0
        paragraph_tokens: dict[int, int] = {}
        for unit in units:
            paragraph_tokens[unit.paragraph] = paragraph_tokens.get(unit.paragraph, 0) + unit.tokens
        fresh = 0  # units of ``current`` that are not overlap from the previous chunk
        for unit in units:
            if current and not self._room(current, tokens, unit, paragraph_tokens):
                spans.append((current[0].start, current[-1].end))
                current = self._tail(current) if fresh else []
                tokens = sum(u.tokens for u in current)
                while current and not self._fits(current[0].start, unit.end):
                    tokens -= current.pop(0).tokens
                fresh = 0
            current.append(unit)
            tokens += unit.tokens
            fresh += 1
        if current and fresh:
            spans.append((current[0].start, current[-1].end))
        return spans

    def _room(self, current: list[_Unit], tokens: int, unit: _Unit,
              paragraph_tokens: dict[int, int]) -> bool:
        """Whether ``unit`` joins the current chunk."""
        estimate = self._base + tokens + unit.tokens
        if estimate > self._limit:
            # Sums of parts may differ from the whole by a token or two; ask when close.
            if estimate > self._limit * 1.1 + 2 or not self._fits(current[0].start, unit.end):
                return False
        elif estimate > self._limit * _EXACT_MARGIN and not self._fits(current[0].start,
                                                                        unit.end):
            return False
        starts_paragraph = unit.paragraph != current[-1].paragraph
        if starts_paragraph and tokens >= self._limit // 2:
            # Half full: end at this paragraph break unless the whole paragraph fits too.
            return tokens + paragraph_tokens[unit.paragraph] + self._base <= self._limit
        return True

    def _tail(self, current: list[_Unit]) -> list[_Unit]:
        """The end of a finished chunk, within the overlap budget: its last whole units, or
        else the last words of its last unit."""
        tail: list[_Unit] = []
        tokens = 0
        for unit in reversed(current[1:]):
            if tokens + unit.tokens > self._overlap:
                break
            tail.insert(0, unit)
            tokens += unit.tokens
        if tail or not self._overlap or len(current) < 2:
            return tail
        last = current[-1]
        words = list(_WORD.finditer(self._text, last.start, last.end))
        for word in reversed(words[1:]):
            cost = self._cost(word.start(), last.end)
            if cost > self._overlap:
                break
            tail = [_Unit(word.start(), last.end, cost, last.paragraph)]
        return tail


def _sentences(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Sentence spans of ``text[start:end]`` without surrounding whitespace."""
    position = start
    for match in _SENTENCE_END.finditer(text, start, end):
        yield from _stripped(text, position, match.start())
        position = match.end()
    yield from _stripped(text, position, end)


def _stripped(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield start, end
