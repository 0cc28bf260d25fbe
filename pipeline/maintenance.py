"""Periodic upkeep: compact the vector index where the backend needs it."""

from adapters.ports import Compactable
from pipeline.bootstrap import Services


def compact_index(services: Services) -> int:
    """Compact the vector index if its backend needs it; returns the tables compacted."""
    if isinstance(services.vectors, Compactable):
        return services.vectors.optimize()
    return 0
