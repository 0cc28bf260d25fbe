"""Checks made when a worker starts: the index and the embedder must agree on dimensions."""

from adapters import factory
from adapters.ports import DimensionChecked
from pipeline.settings import Settings


def check_vector_dimension(settings: Settings) -> None:
    """ConfigurationError, naming both dimensions, when the configured vector index stores
    vectors of another dimension than the configured embedder makes. Builds short-lived
    adapters; the embedder's model is not loaded."""
    embedder = factory.embedder(settings)
    index = factory.vector_index(settings, embedder.dimension, model_name=embedder.model_name)
    if isinstance(index, DimensionChecked):
        index.check_dimension()
