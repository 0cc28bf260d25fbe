"""Search over a tenant's documents: filters, the current version only, hybrid ranking, snippets.

1. The query is embedded and the vector index returns the nearest chunks of the tenant that
   pass the equality filters (document, source, content type, keyword), ``CANDIDATES_PER_HIT``
   per wanted hit (more when too many of them are dropped in step 2).
   The ingested-after/before range and conditions on custom metadata (equality, one of,
   numeric and date ranges: ``domain.filters``) are part of that vector filter.
2. Candidates of a deleted document or of a version that is not (or no longer) its served
   one are dropped, so a search during an update
   sees the old version or the new one, never both and never neither. A candidate whose
   chunks cannot be read (missing or unreadable objects) is skipped and counted
   (``SearchMetrics.skipped_candidate``, exported as
   ``conversa_search_skipped_candidates_total``): one broken document never fails the
   tenant's search.
3. ``ranking="hybrid"`` (the default) re-ranks the candidates by cosine plus two lexical
   signals: BM25 of the query's words over the candidates' texts, and the share of the
   query's words among the keywords extracted from the document at ingest.
   ``ranking="vector"`` keeps the cosine order. Measured on the labelled set in
   tests/data/search (18 documents, 46 queries; tests/unit/test_search_ranking.py) with
   MiniLM and YAKE: MRR@10 0.935 vector-only, 0.989 hybrid; recall@5 1.0 both. BM25 earns
   its place (alone it gives the same 0.989); the ingest keywords alone changed nothing on
   this set (0.935 at weights 0.05 and 0.15) and keep a small weight. The weights were
   picked on this same small set, so the figures are optimistic.
4. ``ranking="fused"`` also asks the index's full-text side (``KeywordSearchable``: LanceDB's
   own full-text index, BM25 over the in-memory fake's texts, sparse vectors on Pinecone)
   for the chunks that share the query's words, keeps those of served versions as in step 2,
   and orders the union of both lists by reciprocal rank fusion of the cosine order and the
   full-text order (``FUSION_K``, ``FUSION_LEXICAL_WEIGHT``). A chunk the vector search never
   surfaces is still found by its exact words: an identifier, a number, a name. The constants
   were picked on one half of the labelled set of ``bench/search_quality.py`` and reported
   on the other (README, "Search quality").
"""

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from adapters.ports import KeywordSearchable, MetadataFilter, QueryEmbedder
from domain import lexical
from domain.documents import Document, SearchHit, VectorHit, version_of_vector
from domain.errors import ConfigurationError, NotFoundError, PermanentError
from domain.filters import FilterValue, Range
from pipeline import artifacts
from pipeline.bootstrap import Services

log = logging.getLogger(__name__)

MAX_TOP_K = 100
CANDIDATES_PER_HIT = 4
MIN_CANDIDATES = 40
MAX_CANDIDATES = 10_000  # Pinecone's top_k limit
#: Weights of the lexical signals added to the cosine (which is about 0.2-0.7 for MiniLM).
BM25_WEIGHT = 0.15
KEYWORD_WEIGHT = 0.05
BM25_K1 = 1.2
BM25_B = 0.75
SNIPPET_CHARS = 240
#: Reciprocal rank fusion of the cosine and full-text orders (``ranking="fused"``).
FUSION_K = 20
FUSION_LEXICAL_WEIGHT = 2.0

Ranking = Literal["hybrid", "vector", "fused"]
RANKINGS: tuple[Ranking, ...] = ("hybrid", "vector", "fused")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class SearchFilters:
    """What a hit must match: each field given narrows the search (a list means any of)."""

    document_id: str | Sequence[str] | None = None
    source: str | Sequence[str] | None = None
    content_type: str | Sequence[str] | None = None
    keyword: str | None = None
    ingested_after: datetime | None = None
    ingested_before: datetime | None = None
    #: Conditions on custom metadata (``domain.filters``: equality, one of, Range).
    metadata: MetadataFilter | None = None

    def equality(self) -> dict[str, FilterValue]:
        """Every condition as one vector-index filter."""
        wanted: dict[str, FilterValue] = dict(self.metadata or {})
        for name in ("document_id", "source", "content_type"):
            value = getattr(self, name)
            if value is not None:
                wanted[name] = value if isinstance(value, str) else list(value)
        if self.keyword is not None:
            wanted["keywords"] = self.keyword.strip().lower()
        if self.ingested_after is not None or self.ingested_before is not None:
            wanted["ingested_at"] = Range(
                gte=self.ingested_after.timestamp() if self.ingested_after else None,
                lt=self.ingested_before.timestamp() if self.ingested_before else None)
        return wanted


@dataclass
class _Candidate:
    hit: VectorHit
    chunk: artifacts.ChunkText | None
    document: Document
    score: float = 0.0


def search(
    services: Services,
    tenant: str,
    query: str,
    top_k: int = 5,
    metadata_filter: MetadataFilter | None = None,
    *,
    filters: SearchFilters | None = None,
    ranking: Ranking = "hybrid",
) -> list[SearchHit]:
    if not query.strip():
        raise PermanentError("the query is empty")
    if not 1 <= top_k <= MAX_TOP_K:
        raise PermanentError(f"top_k must be between 1 and {MAX_TOP_K}")
    if ranking not in RANKINGS:
        raise PermanentError(f"unknown ranking {ranking!r}: {', '.join(RANKINGS)}")
    if ranking == "fused" and not isinstance(services.vectors, KeywordSearchable):
        raise ConfigurationError(
            f"the vector index {type(services.vectors).__name__} has no full-text side: "
            "ranking 'fused' needs one; use hybrid or vector")
    filters = filters or SearchFilters()
    wanted: dict[str, FilterValue] = {**(metadata_filter or {}), **filters.equality()}
    if isinstance(services.embedder, QueryEmbedder):
        vector = services.embedder.embed_query(query)
    else:
        [vector] = services.embedder.generate_embeddings([query])
    limit = max(top_k * CANDIDATES_PER_HIT, MIN_CANDIDATES)
    while True:
        hits = services.vectors.semantic_search(tenant, vector, limit, wanted or None)
        candidates = _current(services, tenant, hits)
        # Vectors of versions not (or no longer) current can crowd the nearest ones while a
        # document is being updated: look further until enough remain or nothing is left.
        if len(candidates) >= min(limit, top_k * CANDIDATES_PER_HIT) or len(hits) < limit \
                or limit >= MAX_CANDIDATES:
            break
        limit = min(limit * 4, MAX_CANDIDATES)
    for candidate in candidates:
        candidate.score = candidate.hit.score
    if ranking == "hybrid":
        _add_lexical(query, candidates)
    elif ranking == "fused":
        candidates = _fuse(services, tenant, query, candidates, limit, wanted)
    candidates.sort(key=lambda c: (-c.score, c.hit.id))
    terms = _terms(query)
    return [_result(candidate, terms) for candidate in candidates[:top_k]]


def _fuse(services: Services, tenant: str, query: str, candidates: list[_Candidate],
          limit: int, wanted: dict[str, FilterValue]) -> list[_Candidate]:
    """The vector candidates and the full-text hits (of served versions), scored by
    reciprocal rank fusion of the cosine order and the full-text order."""
    index = services.vectors
    assert isinstance(index, KeywordSearchable)
    text_hits = index.keyword_search(tenant, query, limit, wanted or None)
    by_id = {c.hit.id: c for c in candidates}
    for candidate in _current(services, tenant,
                              [h for h in text_hits if h.id not in by_id]):
        by_id[candidate.hit.id] = candidate
    vector_order = [c.hit.id for c in sorted(candidates, key=lambda c: (-c.hit.score, c.hit.id))]
    text_order = [h.id for h in text_hits if h.id in by_id]
    fused = lexical.reciprocal_rank_fusion(
        [(vector_order, 1.0), (text_order, FUSION_LEXICAL_WEIGHT)], FUSION_K)
    for vector_id, candidate in by_id.items():
        candidate.score = fused.get(vector_id, 0.0)
    return list(by_id.values())


def _current(services: Services, tenant: str, hits: list[VectorHit]) -> list[_Candidate]:
    """The hits of live documents' served versions, with their text."""
    documents: dict[str, Document | None] = {}
    chunk_sets: dict[str, artifacts.ChunkSet | None] = {}
    kept = []
    for hit in hits:
        document_id = str(hit.metadata.get("document_id", ""))
        if document_id not in documents:
            documents[document_id] = services.documents.get(tenant, document_id)
        document = documents[document_id]
        served = document.served if document is not None and not document.deleted else None
        if document is None or served is None \
                or version_of_vector(hit.id) != served.vector_version:
            continue
        chunk_set = _chunk_set(services, chunk_sets, served.chunks_key)
        index = hit.metadata.get("chunk_index", -1)
        if chunk_set is None:
            services.search_metrics.skipped_candidate("chunks_unreadable")
            continue
        if not isinstance(index, int) or not 0 <= index < len(chunk_set.chunks):
            services.search_metrics.skipped_candidate("chunk_missing")
            continue
        kept.append(_Candidate(hit=hit, chunk=chunk_set.chunks[index], document=document))
    return kept


def _chunk_set(services: Services, cache: dict[str, artifacts.ChunkSet | None],
               key: str) -> artifacts.ChunkSet | None:
    """The served version's chunks, or None (logged once per search) when they are missing
    or unreadable."""
    if key not in cache:
        try:
            cache[key] = artifacts.load_chunks(services.objects, key)
        except (NotFoundError, PermanentError) as exc:
            log.warning("search: skipping candidates of chunks %s: %s", key, exc)
            cache[key] = None
    return cache[key]


def _terms(text: str) -> list[str]:
    return lexical.terms(text)


def _add_lexical(query: str, candidates: list[_Candidate]) -> None:
    """Add the weighted BM25 (over the candidates, normalised to 0..1) and keyword match."""
    terms = set(_terms(query))
    if not terms or not candidates:
        return
    bags = [Counter(_terms(c.chunk.text if c.chunk else "")) for c in candidates]
    bm25 = lexical.bm25(terms, bags, BM25_K1, BM25_B)
    best = max(bm25) or 1.0
    for candidate, score in zip(candidates, bm25, strict=True):
        keyword_words = {w for k in candidate.document.keywords for w in _terms(k)}
        matched = len(terms & keyword_words) / len(terms)
        # A negative cosine is no evidence rather than evidence against: counted as 0, so
        # the lexical signals decide among chunks the embedder puts far from the query (an
        # identifier the model has no sense of) instead of the sign of their noise.
        candidate.score = max(candidate.score, 0.0) \
            + BM25_WEIGHT * score / best + KEYWORD_WEIGHT * matched


def snippet(text: str, terms: Sequence[str], width: int = SNIPPET_CHARS) -> str:
    """About ``width`` characters of ``text`` around the most query words, cut at spaces."""
    if len(text) <= width:
        return text
    wanted = set(terms)
    positions = [m.start() for m in _WORD.finditer(text) if m.group().lower() in wanted]
    best, best_count = 0, -1
    for position in positions:
        count = sum(1 for p in positions if position <= p < position + width)
        if count > best_count:
            best, best_count = position, count
    start = max(0, min(best - width // 4, len(text) - width))
    end = min(len(text), start + width)
    if start > 0:
        space = text.find(" ", start, end)
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    return ("…" if start > 0 else "") + text[start:end].strip() + ("…" if end < len(text) else "")


def _result(candidate: _Candidate, terms: Sequence[str]) -> SearchHit:
    metadata = candidate.hit.metadata
    chunk = candidate.chunk
    keywords = metadata.get("keywords", [])
    index = metadata.get("chunk_index", -1)
    text = chunk.text if chunk else ""
    return SearchHit(
        document_id=str(metadata.get("document_id", "")),
        chunk_index=index if isinstance(index, int) else -1,
        score=candidate.score,
        text=text,
        snippet=snippet(text, terms),
        source=str(metadata.get("source", "")),
        content_type=str(metadata.get("content_type", "")),
        keywords=list(keywords) if isinstance(keywords, list) else [],
        page=chunk.page if chunk else None,
        section=chunk.section if chunk else None,
        start=chunk.start if chunk else None,
        end=chunk.end if chunk else None,
        metadata=dict(candidate.document.served.metadata) if candidate.document.served else {},
    )
