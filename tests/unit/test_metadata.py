"""Custom metadata: names, types and sizes checked in the domain, carried from the upload to the
served version and every vector, updated by a metadata-only upload, and filtered on in search."""

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.memory.fakes import HashEmbedder
from cli.main import cli
from domain.documents import VectorRecord
from domain.errors import PermanentError
from domain.events import UploadEvent
from domain.filters import Range, from_json, parse_conditions
from domain.metadata import (
    MAX_METADATA_BYTES,
    PINECONE_METADATA_BYTES,
    SYSTEM_KEYS,
    InvalidMetadataError,
    metadata_size,
    normalize,
    parse_pairs,
)
from domain.status import JobStatus
from pipeline.bootstrap import Services
from pipeline.producer import enqueue, file_event
from pipeline.search import SearchFilters, search
from tests.support.inline import memory_services

MAY_1 = 1714521600  # 2024-05-01T00:00:00Z


def test_text_values_are_typed() -> None:
    assert parse_pairs(["team=legal", "year=2024", "score=0.75", "draft=false",
                        "published=2024-05-01", "zip=007", 'code="2024"', "tag=a", "tag=b",
                        "at=2024-05-01T02:00:00+02:00", "note=a=b"]) == {
        "team": "legal", "year": 2024, "score": 0.75, "draft": False, "published": MAY_1,
        "zip": "007", "code": "2024", "tag": ["a", "b"], "at": MAY_1, "note": "a=b"}
    assert normalize({"published": "2024-05-01", "n": 3, "tags": ["x"]}) == {
        "published": MAY_1, "n": 3, "tags": ["x"]}
    assert normalize(normalize({"d": "2024-05-01"})) == {"d": MAY_1}  # idempotent


@pytest.mark.parametrize(("pairs", "reason"), [
    (["novalue"], "not name=value"),
    (["1abc=x"], "not valid"),
    (["bad-name=x"], "not valid"),
    (["source=x"], "system's own fields"),
    (["document_id=x"], "system's own fields"),
    (["n=1", "n=2"], "only text values make a list"),
    (["d=2024-13-45"], "not one"),
    (["big=" + "x" * MAX_METADATA_BYTES], "over the limit"),
])
def test_bad_pairs_are_refused_with_the_reason(pairs: list[str], reason: str) -> None:
    with pytest.raises(InvalidMetadataError, match=reason):
        parse_pairs(pairs)


def test_bad_values_are_refused() -> None:
    for value in (float("nan"), None, {"a": 1}, [1, 2]):
        with pytest.raises(InvalidMetadataError):
            normalize({"x": value})
    with pytest.raises(InvalidMetadataError, match="at most 64"):
        normalize({f"f{n}": n for n in range(65)})
    with pytest.raises(InvalidMetadataError):  # the event checks it too
        UploadEvent(tenant="acme", source="s", source_uri="file:///x", source_name="x",
                    metadata={"keywords": "mine"})


def test_the_largest_metadata_fits_pinecone_beside_the_largest_system_fields() -> None:
    custom = {"a": "x" * (MAX_METADATA_BYTES - 10)}
    assert metadata_size(normalize(custom)) <= MAX_METADATA_BYTES
    system = {
        "document_id": "doc_" + "0" * 32, "chunk_index": 99_999, "source": "\U0001F600" * 1024,
        "sha256": "f" * 64, "content_type": "application/vnd.openxmlformats-officedocument."
        "wordprocessingml.document", "ingested_at": 4_102_444_800,
        "chunks_key": "tenant-with-a-long-name-of-63-characters-aaaaaaaaaaaaaaaaaaaaaaa/derived/"
        + "f" * 64 + "/chunks-v2-openai-text-embedding-3-large-3072-t8192-o4096.json",
        "keywords": ["\U0001F600" * 64] * 50,
    }
    assert set(system) == SYSTEM_KEYS
    assert metadata_size({**custom, **system}) <= PINECONE_METADATA_BYTES


def test_conditions_as_text_and_as_json() -> None:
    assert parse_conditions(["team=legal", "year>=2020", "year<2024", "tag=a", "tag=b",
                             "published>2024-05-01"]) == {
        "team": "legal", "year": Range(gte=2020, lt=2024), "tag": ["a", "b"],
        "published": Range(gt=MAY_1)}
    for bad in (["x"], ["year>=soon"], ["n=1", "n>2"]):
        with pytest.raises(InvalidMetadataError):
            parse_conditions(bad)
    assert from_json({"published": {"gte": "2024-05-01", "lt": 1e10}, "team": ["a"],
                      "day": "2024-05-01", "source": "2024-05-01"}) == {
        "published": Range(gte=MAY_1, lt=1e10), "team": ["a"], "day": MAY_1,
        "source": "2024-05-01"}  # a system field's text stays text
    with pytest.raises(InvalidMetadataError, match="unknown range bound"):
        from_json({"n": {"between": 1}})


# -- through the pipeline -------------------------------------------------------------------


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.texts = 0

    def generate_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts += len(texts)
        return super().generate_embeddings(texts)


@pytest.fixture
def services(tmp_path: Path) -> Services:
    services = memory_services(tmp_path)
    services.embedder = CountingEmbedder()
    return services


def _ingest(services: Services, path: Path, source: str, **metadata: object) -> JobStatus:
    event = file_event(path, "acme", services.settings.max_upload_bytes, source,
                       metadata=metadata)
    return services.jobs.get(enqueue(services, event).job_id).status


def _vector_metadata(services: Services, source: str) -> list[dict[str, object]]:
    index = services.vectors
    hits = index.semantic_search("acme", [1.0] + [0.0] * 63, 1000, {"source": source})
    return [hit.metadata for hit in hits]


def test_metadata_reaches_the_version_and_every_vector_and_filters_search(
        services: Services, tmp_path: Path) -> None:
    texts = {"fern": "Water the fern every week and keep it out of direct sun. " * 30,
             "cactus": "Water the cactus once a month and give it plenty of sun. " * 30}
    for name, text in texts.items():
        (tmp_path / f"{name}.md").write_text(text)
    assert _ingest(services, tmp_path / "fern.md", "fern", team="garden", year=2023,
                   published="2024-05-01", tags=["indoor", "shade"]) is JobStatus.DONE
    assert _ingest(services, tmp_path / "cactus.md", "cactus", team="garden",
                   year=2021) is JobStatus.DONE
    vectors = _vector_metadata(services, "fern")
    assert len(vectors) > 1
    assert all(v["team"] == "garden" and v["year"] == 2023 and v["published"] == MAY_1
               and v["tags"] == ["indoor", "shade"] for v in vectors)
    [fern] = [d for d in (services.documents.get("acme", h.document_id) for h in
                          search(services, "acme", "water", 10)) if d and d.source == "fern"][:1]
    assert fern.served is not None
    assert fern.served.metadata["year"] == 2023

    def sources(**conditions: object) -> set[str]:
        hits = search(services, "acme", "water the plant", 10,
                      filters=SearchFilters(metadata=conditions))  # type: ignore[arg-type]
        return {hit.source for hit in hits}

    assert sources(team="garden") == {"fern", "cactus"}
    assert sources(year=Range(gte=2022)) == {"fern"}
    assert sources(year=[2020, 2021]) == {"cactus"}
    assert sources(tags="shade") == {"fern"}
    assert sources(published=Range(gte=MAY_1, lt=MAY_1 + 86_400)) == {"fern"}
    assert sources(team="kitchen") == set()
    [hit] = search(services, "acme", "fern", 1, filters=SearchFilters(metadata={"year": 2023}))
    assert hit.metadata == {"team": "garden", "year": 2023, "published": MAY_1,
                            "tags": ["indoor", "shade"]}


def test_a_metadata_only_change_updates_the_vectors_without_embedding_again(
        services: Services, tmp_path: Path) -> None:
    path = tmp_path / "fern.md"
    path.write_text("Water the fern every week and keep it out of direct sun. " * 30)
    assert _ingest(services, path, "fern", team="garden") is JobStatus.DONE
    embedder = services.embedder
    assert isinstance(embedder, CountingEmbedder)
    embedded = embedder.texts
    count = services.vectors.count("acme")

    assert _ingest(services, path, "fern", team="garden") is JobStatus.DONE  # unchanged
    assert services.vectors.count("acme") == count
    assert {v["team"] for v in _vector_metadata(services, "fern")} == {"garden"}

    assert _ingest(services, path, "fern", team="kitchen", year=2024) is JobStatus.DONE
    vectors = _vector_metadata(services, "fern")
    assert len(vectors) == count  # the old version's vectors are gone
    assert {(v["team"], v["year"]) for v in vectors} == {("kitchen", 2024)}
    assert embedder.texts == embedded  # chunks and embeddings reused

    assert _ingest(services, path, "fern") is JobStatus.DONE  # no metadata: cleared
    assert all("team" not in v for v in _vector_metadata(services, "fern"))
    assert embedder.texts == embedded
    assert search(services, "acme", "fern", 5,
                  filters=SearchFilters(metadata={"team": "kitchen"})) == []


def test_the_cli_refuses_bad_metadata_and_conditions_as_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("text")
    runner = CliRunner(env={"COLUMNS": "400", "NO_COLOR": "1"})
    result = runner.invoke(cli, ["ingest", str(tmp_path / "a.md"), "--meta", "source=x"])
    assert result.exit_code == 2
    assert "system's own fields" in result.output
    result = runner.invoke(cli, ["search", "q", "--where", "year>=soon"])
    assert result.exit_code == 2
    assert "a range needs a number or a date" in result.output


def test_vector_records_take_the_metadata_types() -> None:
    record = VectorRecord(id="a", values=[1.0], metadata=normalize(
        {"n": 1, "f": 0.5, "b": True, "s": "x", "l": ["y"], "d": "2024-05-01"}))
    assert json.loads(record.model_dump_json())["metadata"] == {
        "n": 1, "f": 0.5, "b": True, "s": "x", "l": ["y"], "d": MAY_1}
    assert isinstance(InvalidMetadataError("x"), PermanentError)


def test_a_re_index_copies_the_custom_metadata(services: Services, tmp_path: Path) -> None:
    from pipeline.reindex import served_vectors

    path = tmp_path / "fern.md"
    path.write_text("Water the fern every week and keep it out of direct sun. " * 30)
    assert _ingest(services, path, "fern", team="garden", year=2023) is JobStatus.DONE
    [job] = services.jobs.list_jobs(tenant="acme")
    document = services.documents.get("acme", job.document_id)
    assert document is not None
    copied = served_vectors(services, document)
    indexed = {hit.id: hit.metadata for hit in services.vectors.semantic_search(
        "acme", [1.0] + [0.0] * 63, 1000, {"source": "fern"})}
    assert {record.id: record.metadata for record in copied} == indexed
    assert all(record.metadata["team"] == "garden" for record in copied)
