"""Dedupe: identical content is never parsed, embedded or upserted again."""

from collections.abc import Sequence

import pytest

from adapters.memory.fakes import (
    HashEmbedder,
    MemoryVectorIndex,
)
from adapters.parsing.parsers import LibraryParser
from domain.documents import VectorRecord
from domain.parsing import ParsedDocument
from domain.status import JobStatus
from pipeline.producer import enqueue, file_event
from pipeline.search import search
from tests.support.documents import make_pdf
from tests.support.inline import memory_services

TEXT = "Compost needs greens, browns, air and water, turned every week or two. " * 40


class CountingParser(LibraryParser):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def parse(self, data: bytes) -> ParsedDocument:
        self.calls += 1
        return super().parse(data)


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.texts = 0

    def generate_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts += len(texts)
        return super().generate_embeddings(texts)


class CountingIndex(MemoryVectorIndex):
    def __init__(self) -> None:
        super().__init__()
        self.upserted = 0

    def upsert_vector(self, tenant: str, vectors: Sequence[VectorRecord]) -> None:
        self.upserted += len(vectors)
        super().upsert_vector(tenant, vectors)


@pytest.fixture
def services(tmp_path):
    return memory_services(tmp_path, adapters={"embedder": CountingEmbedder(),
                                               "vectors": CountingIndex(),
                                               "parser": CountingParser()})


def ingest(services, path, source=None):
    event = file_event(path, "default", services.settings.max_upload_bytes, source)
    return services.jobs.get(enqueue(services, event).job_id)


def work(services) -> tuple[int, int, int]:
    return services.parser.calls, services.embedder.texts, services.vectors.upserted


def test_identical_content_again_does_no_parsing_embedding_or_upserting(services, tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf([[TEXT[:2000]], [TEXT[2000:]]]))
    first = ingest(services, path)
    done_once = work(services)
    objects_once = services.objects.list_keys()

    again = ingest(services, path)

    assert first.status is again.status is JobStatus.DONE
    assert done_once[0] == 1
    assert done_once[1] == done_once[2] == first.chunk_count
    assert work(services) == done_once  # nothing parsed, embedded or upserted
    assert services.objects.list_keys() == objects_once
    assert (again.chunks_key, again.chunk_count, again.keywords) == (
        first.chunks_key, first.chunk_count, first.keywords)
    assert services.vectors.count("default") == first.chunk_count
    assert search(services, "default", "compost greens browns", top_k=1)[0].page in (1, 2)


def test_same_content_under_another_source_reuses_chunks_and_vectors(services, tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(TEXT)
    first = ingest(services, path)
    before = work(services)

    second = ingest(services, path, source="https://example.org/compost")

    assert second.status is JobStatus.DONE
    assert second.document_id != first.document_id
    parsed, embedded, upserted = work(services)
    assert (parsed, embedded) == before[:2]  # chunks and embeddings reused
    assert upserted == before[2] + second.chunk_count  # its own vectors, nothing else


def test_changed_content_is_processed_again(services, tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(TEXT)
    ingest(services, path)
    path.write_text(TEXT + " A new closing sentence about worms.")

    changed = ingest(services, path)

    assert changed.status is JobStatus.DONE
    assert services.parser.calls == 2
