"""Lexical scoring without I/O: the words of a text, BM25 over a set of texts, and rank fusion.

Search re-ranks its candidates with these, the in-memory index answers keyword queries with
them, and the Pinecone adapter derives its sparse vectors from the same words, so every
backend agrees on what a "word" is: a run of letters, digits or underscores, lower-cased,
minus a few words too common to count as evidence.
"""

import hashlib
import math
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

BM25_K1 = 1.2
BM25_B = 0.75
#: Reciprocal rank fusion's constant (Cormack et al. 2009 use 60).
RRF_K = 60

_WORD = re.compile(r"\w+", re.UNICODE)
#: Words too common to count as lexical evidence.
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
    "i", "in", "is", "it", "my", "of", "on", "or", "that", "the", "this", "to", "was", "what",
    "when", "where", "which", "who", "why", "will", "with", "you", "your",
})

K = TypeVar("K", bound=Hashable)


def terms(text: str) -> list[str]:
    """The text's words, lower case, in order, stopwords left out."""
    return [w for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in STOPWORDS]


def bm25(query_terms: Iterable[str], bags: Sequence[Counter[str]],
         k1: float = BM25_K1, b: float = BM25_B) -> list[float]:
    """BM25 of the query's (distinct) terms against each bag of words, with the document
    frequencies and average length of ``bags`` themselves."""
    wanted = set(query_terms)
    if not wanted or not bags:
        return [0.0] * len(bags)
    lengths = [sum(bag.values()) for bag in bags]
    average = (sum(lengths) / len(lengths)) or 1.0
    frequency = {t: sum(1 for bag in bags if t in bag) for t in wanted}
    total = len(bags)
    scores = []
    for bag, length in zip(bags, lengths, strict=True):
        score = 0.0
        for term in wanted:
            tf = bag.get(term, 0)
            if not tf:
                continue
            idf = math.log(1 + (total - frequency[term] + 0.5) / (frequency[term] + 0.5))
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average))
        scores.append(score)
    return scores


def reciprocal_rank_fusion(rankings: Sequence[tuple[Sequence[K], float]],
                           k: float = RRF_K) -> dict[K, float]:
    """Each key's fused score: the sum over the (ranking, weight) pairs of
    ``weight / (k + rank)``, rank counted from 1; a key absent from a ranking gets nothing
    from it."""
    fused: dict[K, float] = {}
    for ranking, weight in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return fused


#: Sparse vectors index words by a 31-bit hash (Pinecone takes 32-bit unsigned indices).
SPARSE_BITS = 31


def term_index(term: str) -> int:
    """A word's stable index in sparse vectors (the same in every process and version)."""
    digest = hashlib.blake2b(term.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << SPARSE_BITS) - 1)


def sparse_document(text: str, average_length: float = 120.0,
                    k1: float = BM25_K1, b: float = BM25_B) -> tuple[list[int], list[float]]:
    """A chunk's sparse vector: per word, BM25's saturated term frequency (the document
    half of BM25; the query half, idf, is not known per chunk and is left out)."""
    bag = Counter(terms(text))
    length = sum(bag.values())
    weights: dict[int, float] = {}
    for term, tf in bag.items():
        index = term_index(term)
        weight = tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average_length))
        weights[index] = weights.get(index, 0.0) + weight
    indices = sorted(weights)
    return indices, [weights[i] for i in indices]


def sparse_query(text: str) -> tuple[list[int], list[float]]:
    """A query's sparse vector: weight 1 per distinct word."""
    indices = sorted({term_index(term) for term in terms(text)})
    return indices, [1.0] * len(indices)
