"""Hybrid search finds a chunk that holds the query's word even when the embedder puts it far
from the query (a negative cosine), among chunks that hold none of the query's words.

The chaos suite's poison scenario found this: with the fake OpenAI's signed hashed vectors, a
marker word that shares its bucket with a common word of the opposite sign gives its own
document a negative cosine, and the tenant's other chunks (cosine about 0, no lexical
evidence at all) outranked it. The vectors here are the fake OpenAI's.
"""

import hashlib
from itertools import combinations, count

import pytest

from adapters.memory.fakes import (
    HashEmbedder,
)
from domain.status import JobStatus
from pipeline.producer import enqueue, file_event
from pipeline.search import search
from tests.support.fake_openai import fake_embedding
from tests.support.inline import memory_services

DIMENSION = 64
FILLER = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


class SignedHashEmbedder(HashEmbedder):
    """The fake OpenAI's vectors: words hashed to signed buckets, so two words can cancel."""

    def __init__(self) -> None:
        super().__init__(dimension=DIMENSION)

    def generate_embeddings(self, texts):
        return [fake_embedding(text, DIMENSION) for text in texts]


def bucket(word: str) -> tuple[int, int]:
    value = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
    return value % DIMENSION, 1 if (value >> 63) & 1 else -1


def cancelling_pair() -> tuple[str, str]:
    """A marker and a word in its bucket with the opposite sign, neither sharing a bucket
    with the filler words."""
    taken = {bucket(word)[0] for word in FILLER}
    for n in count():
        marker, word = f"zq{n}", f"word{n}"
        (b1, s1), (b2, s2) = bucket(marker), bucket(word)
        if b1 == b2 and s1 != s2 and b1 not in taken:
            return marker, word
    raise AssertionError("unreachable")


@pytest.fixture
def services(tmp_path):
    return memory_services(tmp_path, adapters={"embedder": SignedHashEmbedder()})


def ingest(services, path, text):
    path.write_text(text)
    job = services.jobs.get(enqueue(services, file_event(path, "t", 10**6)).job_id)
    assert job.status is JobStatus.DONE
    return job


def test_a_chunk_with_the_query_word_beats_chunks_without_it(services, tmp_path):
    marker, word = cancelling_pair()
    text = f"{marker} {word} {word} {word} {word} alpha bravo charlie"
    target = ingest(services, tmp_path / "target.txt", text)
    for n, words in enumerate(list(combinations(FILLER, 6))[:12]):
        ingest(services, tmp_path / f"other{n}.txt", " ".join(words))
    query, own = services.embedder.generate_embeddings([marker, text])
    assert sum(q * v for q, v in zip(query, own, strict=True)) < -0.5  # far from its own word

    hits = search(services, "t", marker, top_k=5)

    assert hits[0].document_id == target.document_id
