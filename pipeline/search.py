"""Semantic search over a tenant's documents: embed the query, search, join the chunk text."""

from adapters.ports import MetadataFilter
from domain.documents import SearchHit
from domain.errors import PermanentError
from pipeline import artifacts
from pipeline.bootstrap import Services

MAX_TOP_K = 100


def search(
    services: Services,
    tenant: str,
    query: str,
    top_k: int = 5,
    metadata_filter: MetadataFilter | None = None,
) -> list[SearchHit]:
    if not query.strip():
        raise PermanentError("the query is empty")
    if not 1 <= top_k <= MAX_TOP_K:
        raise PermanentError(f"top_k must be between 1 and {MAX_TOP_K}")
    [vector] = services.embedder.generate_embeddings([query])
    hits = services.vectors.semantic_search(tenant, vector, top_k, metadata_filter)
    chunk_sets: dict[str, artifacts.ChunkSet] = {}
    results = []
    for hit in hits:
        key = str(hit.metadata.get("chunks_key", ""))
        index = int(hit.metadata.get("chunk_index", -1))  # type: ignore[arg-type]
        if key not in chunk_sets:
            chunk_sets[key] = artifacts.load_chunks(services.objects, key)
        chunks = chunk_sets[key].chunks
        text = chunks[index].text if 0 <= index < len(chunks) else ""
        keywords = hit.metadata.get("keywords", [])
        results.append(SearchHit(
            document_id=str(hit.metadata.get("document_id", "")),
            chunk_index=index,
            score=hit.score,
            text=text,
            source=str(hit.metadata.get("source", "")),
            keywords=list(keywords) if isinstance(keywords, list) else [],
        ))
    return results
