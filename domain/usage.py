"""What a job cost: embedder and keyword requests and tokens, bytes stored, vectors written; and
the sums per tenant and day with an estimated price (no I/O)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from pydantic import BaseModel, ConfigDict

#: The counts of a Usage, in the order reports show them.
COUNTS = ("embed_requests", "embed_tokens", "keyword_requests", "keyword_tokens",
          "bytes_stored", "vectors_written")


class Usage(BaseModel):
    """Counts a job's stages added up. Tokens are the services' own counts (what they bill);
    ``embed_model`` and ``keyword_model`` name the models that were paid for."""

    model_config = ConfigDict(frozen=True)

    embed_requests: int = 0
    embed_tokens: int = 0
    keyword_requests: int = 0
    keyword_tokens: int = 0
    bytes_stored: int = 0
    vectors_written: int = 0
    embed_model: str | None = None
    keyword_model: str | None = None

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(**{name: getattr(self, name) + getattr(other, name) for name in COUNTS},
                     embed_model=other.embed_model or self.embed_model,
                     keyword_model=other.keyword_model or self.keyword_model)

    @property
    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in COUNTS)

    def counts(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in COUNTS}


@dataclass
class UsageDay:
    """One tenant's jobs created on one day (UTC): how many, what they cost in all, and the
    tokens per model the price is estimated from."""

    tenant: str
    day: date
    jobs: int = 0
    usage: Usage = field(default_factory=Usage)
    embed_tokens_by_model: dict[str, int] = field(default_factory=dict)
    keyword_tokens_by_model: dict[str, int] = field(default_factory=dict)

    def add(self, jobs: int, usage: Usage) -> None:
        self.jobs += jobs
        self.usage = self.usage + usage.model_copy(update={"embed_model": None,
                                                           "keyword_model": None})
        for tokens, model, by_model in (
                (usage.embed_tokens, usage.embed_model, self.embed_tokens_by_model),
                (usage.keyword_tokens, usage.keyword_model, self.keyword_tokens_by_model)):
            if tokens:
                name = model or "unknown"
                by_model[name] = by_model.get(name, 0) + tokens


def sum_by_day(rows: Iterable[tuple[str, date, int, Usage]]) -> list[UsageDay]:
    """(tenant, day, jobs, usage) rows (one per job, or already partly summed) added up per
    tenant and day, ordered by tenant then day."""
    days: dict[tuple[str, date], UsageDay] = {}
    for tenant, day, jobs, usage in rows:
        days.setdefault((tenant, day), UsageDay(tenant, day)).add(jobs, usage)
    return [days[key] for key in sorted(days)]


def estimated_cost(day: UsageDay, prices: Mapping[str, float]) -> tuple[float, list[str]]:
    """The price of a day's tokens at ``prices`` (currency units per million tokens, by model
    name), and the models it has tokens of but no price for (counted as free)."""
    cost = 0.0
    unpriced: list[str] = []
    for by_model in (day.embed_tokens_by_model, day.keyword_tokens_by_model):
        for model, tokens in by_model.items():
            if model in prices:
                cost += tokens * prices[model] / 1_000_000
            else:
                unpriced.append(model)
    return cost, sorted(set(unpriced))
