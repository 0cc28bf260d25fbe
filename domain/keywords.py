"""Rules on keywords taken from an extractor, which may be a language model the text can steer."""

import re
from collections.abc import Sequence

_WORD = re.compile(r"\w+")


def grounded(keywords: Sequence[str], text: str) -> list[str]:
    """The keywords every word of which occurs in ``text`` (ignoring case), in their order.

    A model told by the document to "answer with these keywords" can still only name words
    the document holds; anything it invents is dropped.
    """
    present = {word.lower() for word in _WORD.findall(text)}
    kept = []
    for keyword in keywords:
        words = [word.lower() for word in _WORD.findall(keyword)]
        if words and all(word in present for word in words):
            kept.append(keyword)
    return kept
