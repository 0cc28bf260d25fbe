"""The full-text side on Pinecone: a sparse vector per chunk in a second, sparse index.

Why sparse vectors and not a MongoDB text index: the MongoDB-wire server the project runs
and tests on (SecantusDB) refuses text indexes ("text indexes are not supported"), so a
``$text`` adapter could not be tested here; and a sparse index keeps the words beside the
vectors, in the service that already holds them, scoped by the same namespace per tenant and
the same metadata filters. Pinecone keeps sparse vectors in an index of their own
(``vector_type="sparse"``, dotproduct metric; a cosine dense index cannot hold them), so
``PineconeHybridIndex`` writes to both: the dense index as before, and the sparse index with
the same ids and metadata and, instead of values, the chunk's words as a sparse vector
(``domain.lexical.sparse_document``: BM25's saturated term frequency per hashed word).
Queries weigh each distinct word 1 (``sparse_query``): there is no corpus-wide idf, so a
rare word counts no more than a common one that is not a stopword. Deletes go to both.

Every transport concern (lazy clients per process, batching within the vendor's limits, the
SDK's retries, error translation, delete by filter with its listing fallback) is the dense
adapter's own: the sparse side is a ``PineconeVectorIndex`` whose payloads are sparse.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from adapters.pinecone.vector_index import (
    _MATCHES_NOTHING,
    MAX_TOP_K,
    PineconeVectorIndex,
    _check_id,
    _from_pinecone,
    _metadata_field,
    _namespace,
    _namespace_missing,
    translate_filter,
)
from adapters.ports import MetadataFilter
from domain import lexical
from domain.documents import VectorHit, VectorRecord
from domain.errors import PermanentError

if TYPE_CHECKING:
    from pinecone import Index


class PineconeSparseIndex(PineconeVectorIndex):
    """The sparse index at ``host``: records' text as sparse vectors, searched by words."""

    def __init__(self, api_key: str, host: str, **options: Any) -> None:
        super().__init__(api_key, host, 1, **options)

    def __repr__(self) -> str:
        return f"PineconeSparseIndex(host={self.host!r})"

    def _payload(self, record: VectorRecord) -> tuple[dict[str, Any], int]:
        _check_id(record.id)
        indices, values = lexical.sparse_document(record.text)
        payload: dict[str, Any] = {"id": record.id,
                                   "sparse_values": {"indices": indices, "values": values}}
        payload.update(_metadata_field(record))
        wire = {"id": record.id, "sparseValues": payload["sparse_values"],
                "metadata": payload.get("metadata")}
        return payload, len(json.dumps(wire, separators=(",", ":")))

    def upsert_text(self, tenant: str, records: Sequence[VectorRecord]) -> None:
        """Upsert the records that have words; delete the others' ids (text replaced by none)."""
        unique = list({record.id: record for record in records}.values())
        worded = [r for r in unique if lexical.terms(r.text)]
        wordless = [r.id for r in unique if not lexical.terms(r.text)]
        if worded:
            super().upsert_vector(tenant, worded)
        if wordless:
            self.delete_ids(tenant, wordless)

    def keyword_search(self, tenant: str, query: str, top_k: int,
                       metadata_filter: MetadataFilter | None = None) -> list[VectorHit]:
        indices, values = lexical.sparse_query(query)
        if top_k <= 0 or not indices:
            return []
        translated = translate_filter(metadata_filter)
        if translated is _MATCHES_NOTHING:
            return []
        pinecone_filter = translated if isinstance(translated, dict) else None
        namespace = _namespace(tenant)
        limit = min(top_k, MAX_TOP_K)

        def ask(index: Index) -> Any:
            return index.query(sparse_vector={"indices": indices, "values": values},
                               top_k=limit, namespace=namespace, filter=pinecone_filter,
                               include_metadata=True, include_values=False)

        try:
            response = self._call(f"full-text search of tenant {tenant}", ask)
        except PermanentError as exc:
            if _namespace_missing(exc):
                return []  # nothing was ever written for this tenant
            raise
        hits = [VectorHit(id=m.id, score=float(m.score),
                          metadata=_from_pinecone(m.metadata or {}))
                for m in response.matches if float(m.score) > 0]
        hits.sort(key=lambda hit: (-hit.score, hit.id))
        return hits[:top_k]


class PineconeHybridIndex:
    """The dense index (vectors, every VectorIndex operation) and the sparse index (the
    full-text side, ``KeywordSearchable``), kept in step: upserts and deletes go to both."""

    def __init__(self, dense: PineconeVectorIndex, sparse: PineconeSparseIndex) -> None:
        self.dense = dense
        self.sparse = sparse

    @property
    def dimension(self) -> int:
        return self.dense.dimension

    def upsert_vector(self, tenant: str, vectors: Sequence[VectorRecord]) -> None:
        self.dense.upsert_vector(tenant, vectors)
        self.sparse.upsert_text(tenant, vectors)

    def semantic_search(self, tenant: str, vector: Sequence[float], top_k: int,
                        metadata_filter: MetadataFilter | None = None) -> list[VectorHit]:
        return self.dense.semantic_search(tenant, vector, top_k, metadata_filter)

    def keyword_search(self, tenant: str, query: str, top_k: int,
                       metadata_filter: MetadataFilter | None = None) -> list[VectorHit]:
        return self.sparse.keyword_search(tenant, query, top_k, metadata_filter)

    def delete_ids(self, tenant: str, ids: Sequence[str]) -> None:
        self.dense.delete_ids(tenant, ids)
        self.sparse.delete_ids(tenant, ids)

    def delete_document(self, tenant: str, document_id: str) -> None:
        self.dense.delete_document(tenant, document_id)
        self.sparse.delete_document(tenant, document_id)

    def count(self, tenant: str) -> int:
        return self.dense.count(tenant)

    def list_ids(self, tenant: str, prefix: str = "") -> list[str]:
        return self.dense.list_ids(tenant, prefix)

    def check_dimension(self) -> None:
        self.dense.check_dimension()

    def close(self) -> None:
        self.dense.close()
        self.sparse.close()
