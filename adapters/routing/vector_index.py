"""The VectorIndex port over several indexes: each tenant is served by the index its route
names (``domain.indexes``), read from the IndexRegistry on every call, so a switch is seen by
every process at once.

- Reads (``semantic_search``, ``keyword_search``, ``count``, ``list_ids``) go to the
  tenant's active index: the settings' index (``default``) until a re-index switched the
  tenant to another.
- Writes (``upsert_vector``, ``delete_ids``, ``delete_document``) go to the active index and,
  while a re-index is filling one, to that one too: what the stages write or clean up during
  the copy is in the new index when it is switched to.
- ``index_for(target)`` builds (once per target) the adapter of another index, for the
  re-index and the check; ``route(tenant)`` reads the tenant's route.
"""

import threading
from collections.abc import Callable, Sequence

from adapters.ports import (
    AddsNewVectors,
    IndexRegistry,
    KeywordSearchable,
    MetadataFilter,
    PlacedIndex,
    VectorIndex,
)
from domain.documents import VectorHit, VectorRecord
from domain.errors import ConfigurationError
from domain.indexes import IndexRoute, IndexTarget


class RoutedVectorIndex:
    def __init__(self, default: VectorIndex, registry: IndexRegistry,
                 build: Callable[[IndexTarget], VectorIndex]) -> None:
        self._default = default
        self._registry = registry
        self._build = build
        self._built: dict[str, VectorIndex] = {}
        self._guard = threading.Lock()

    @property
    def default(self) -> VectorIndex:
        return self._default

    def __getattr__(self, name: str) -> object:
        # Optional capabilities of the settings' index (optimize, check_dimension, close).
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._default, name)

    def route(self, tenant: str) -> IndexRoute | None:
        return self._registry.get_route(tenant)

    def index_for(self, target: IndexTarget) -> VectorIndex:
        with self._guard:
            if target.spec not in self._built:
                self._built[target.spec] = self._build(target)
            return self._built[target.spec]

    def placed(self, target: IndexTarget | None) -> PlacedIndex:
        """Where a target keeps a tenant's vectors (None: the settings' index)."""
        if target is None:
            return PlacedIndex(self._default, lambda tenant: tenant)
        return PlacedIndex(self.index_for(target), target.name_for)

    def _reader(self, tenant: str) -> PlacedIndex:
        route = self.route(tenant)
        return self.placed(route.active if route is not None else None)

    def _writers(self, tenant: str) -> list[PlacedIndex]:
        route = self.route(tenant)
        if route is None:
            return [self.placed(None)]
        writers = [self.placed(route.active)]
        if route.building is not None and route.building != route.active:
            writers.append(self.placed(route.building))
        return writers

    # -- the port -----------------------------------------------------------------------------

    def upsert_vector(self, tenant: str, vectors: Sequence[VectorRecord]) -> None:
        for placed in self._writers(tenant):
            placed.index.upsert_vector(placed.name(tenant), vectors)

    def add_new_vectors(self, tenant: str, vectors: Sequence[VectorRecord],
                        fresh: Callable[[], bool]) -> None:
        """``AddsNewVectors`` on every index written to; one that cannot upserts."""
        for placed in self._writers(tenant):
            if isinstance(placed.index, AddsNewVectors):
                placed.index.add_new_vectors(placed.name(tenant), vectors, fresh)
            else:
                placed.index.upsert_vector(placed.name(tenant), vectors)

    def semantic_search(self, tenant: str, vector: Sequence[float], top_k: int,
                        metadata_filter: MetadataFilter | None = None) -> list[VectorHit]:
        placed = self._reader(tenant)
        return placed.index.semantic_search(placed.name(tenant), vector, top_k, metadata_filter)

    def keyword_search(self, tenant: str, query: str, top_k: int,
                       metadata_filter: MetadataFilter | None = None) -> list[VectorHit]:
        """The full-text side of the tenant's active index (``KeywordSearchable``)."""
        placed = self._reader(tenant)
        if not isinstance(placed.index, KeywordSearchable):
            raise ConfigurationError(
                f"the vector index serving tenant {tenant} ({type(placed.index).__name__}) "
                "has no full-text side: ranking 'fused' needs one; use hybrid or vector")
        return placed.index.keyword_search(placed.name(tenant), query, top_k, metadata_filter)

    def delete_ids(self, tenant: str, ids: Sequence[str]) -> None:
        for placed in self._writers(tenant):
            placed.index.delete_ids(placed.name(tenant), ids)

    def delete_document(self, tenant: str, document_id: str) -> None:
        for placed in self._writers(tenant):
            placed.index.delete_document(placed.name(tenant), document_id)

    def count(self, tenant: str) -> int:
        placed = self._reader(tenant)
        return placed.index.count(placed.name(tenant))

    def list_ids(self, tenant: str, prefix: str = "") -> list[str]:
        placed = self._reader(tenant)
        return placed.index.list_ids(placed.name(tenant), prefix)
