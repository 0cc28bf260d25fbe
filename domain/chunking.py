"""A word-window chunker: fixed windows of words with overlap, never splitting a word."""

import re

from domain.documents import Chunk

_WORD = re.compile(r"\S+")


def chunk_words(doc_id: str, text: str, *, size: int = 120, overlap: int = 20) -> list[Chunk]:
    """Split ``text`` into windows of at most ``size`` words, ``overlap`` words shared.

    Offsets are character offsets into ``text``; the chunk text is the exact slice.
    """
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError("need size > 0 and 0 <= overlap < size")
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    chunks: list[Chunk] = []
    step = size - overlap
    for index, first in enumerate(range(0, max(len(words) - overlap, 1), step)):
        window = words[first : first + size]
        if not window:
            break
        start, end = window[0][0], window[-1][1]
        chunks.append(Chunk(document_id=doc_id, index=index, text=text[start:end], start=start,
                            end=end))
    return chunks
