"""Which vector index serves a tenant, and the record of a re-index that moves it to another.

- An **index target** names a vector index: ``lancedb:<folder>`` (an embedded LanceDB
  database, one table per tenant) or ``pinecone:<host>`` (a Pinecone index's data-plane host),
  optionally ``#<name>`` to use that table or namespace instead of the tenant's own name.
- A tenant's **route** says which target serves it (``active``; None: the index of the
  settings) and which one a re-index is filling (``building``). Reads go to the active index;
  writes go to both while a re-index is under way, so the new index misses nothing written
  meanwhile. Every write of a route is a compare-and-set on its ``revision``.
- A **re-index run** records how far the copy got (``last_document_id``: documents are copied
  in id order), so a run that was stopped resumes there.
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.errors import PermanentError

Backend = Literal["lancedb", "pinecone"]
RunState = Literal["copying", "done", "aborted"]
BACKENDS: tuple[Backend, ...] = ("lancedb", "pinecone")


class IndexTarget(BaseModel):
    """One vector index: a backend, where it is, and an optional table or namespace name."""

    model_config = ConfigDict(frozen=True)

    backend: Backend
    location: str = Field(min_length=1)
    name: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.backend}:{self.location}" + (f"#{self.name}" if self.name else "")

    def name_for(self, tenant: str) -> str:
        """The table or namespace this target keeps the tenant's vectors in."""
        return self.name or tenant


def parse_target(spec: str) -> IndexTarget:
    """``lancedb:<folder>[#name]`` or ``pinecone:<host>[#name]``; PermanentError otherwise."""
    backend, sep, rest = spec.strip().partition(":")
    location, _, name = rest.partition("#")
    if not sep or backend not in BACKENDS or not location.strip():
        raise PermanentError(
            f"not an index target: {spec!r}; give lancedb:<folder>[#table] or "
            "pinecone:<host>[#namespace]")
    if "#" in name or (name and not name.strip()):
        raise PermanentError(f"not a table or namespace name in {spec!r}")
    return IndexTarget(backend=backend, location=location.strip(),
                       name=name.strip() or None)


class IndexRoute(BaseModel):
    """The tenant's serving index (None: the settings') and the one being built, if any."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    active: IndexTarget | None = None
    building: IndexTarget | None = None
    run_id: str | None = None
    revision: int = 0


class ReindexRun(BaseModel):
    """One re-index of a tenant's current versions into ``target``."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    tenant: str
    target: IndexTarget
    #: The index the tenant was served from when the run began (None: the settings').
    source: IndexTarget | None = None
    state: RunState = "copying"
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    #: Documents are copied in id order: every id up to this one is in the target.
    last_document_id: str | None = None
    documents_copied: int = 0
    vectors_copied: int = 0
    #: Documents whose stored chunks or embeddings could not be read (``conversa check``
    #: finds and repairs them), and some of their ids.
    documents_skipped: int = 0
    skipped: list[str] = Field(default_factory=list)
    #: How many times the run was started (1, plus one per resume).
    starts: int = 1
