"""Usage that adapters of paid services report as they make their calls, collected per stage run.

An adapter calls :func:`record` after each request it made (the OpenAI embedder with the
tokens the server says it counted, the local embedder with the tokens it ran); a stage run
collects what was recorded while it worked with :func:`collecting` (``pipeline.stage_runner``)
and adds it to the job record. The collector lives in a context variable, so concurrent
threads never mix their figures, and a call made outside any stage (a search's query) is
recorded nowhere (it is counted by the metrics alone: workers/telemetry.py).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from domain.usage import Usage


class UsageCollector:
    """The usage recorded while it was current."""

    def __init__(self) -> None:
        self.usage = Usage()

    def add(self, usage: Usage) -> None:
        self.usage = self.usage + usage


_current: ContextVar[UsageCollector | None] = ContextVar("conversa_usage", default=None)


@contextmanager
def collecting() -> Iterator[UsageCollector]:
    """Collect what adapters record until the block ends (nested blocks each collect their
    own)."""
    collector = UsageCollector()
    token = _current.set(collector)
    try:
        yield collector
    finally:
        _current.reset(token)


def record(**counts: int | str | None) -> None:
    """Add counts (``domain.usage.Usage`` fields) to the collector of this context, if any."""
    collector = _current.get()
    if collector is not None:
        collector.add(Usage.model_validate(counts))
