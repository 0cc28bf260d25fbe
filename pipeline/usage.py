"""Usage per job and tenant: what each stage adds to its job's record, and the report that adds
jobs up per tenant and day with an estimated cost.

A stage's run collects what the adapters of paid services record while it works
(``adapters.metering``: embedder and keyword requests and tokens, as the services count
them) and what the stage itself declares (``usage_fields``: bytes it stored, vectors it
wrote); ``with_usage`` adds both to the job's ``usage`` in the stage's own compare-and-set, so
a duplicate delivery that loses the race adds nothing. What a run that failed (and was
retried) or lost the race spent is not on the record; the Prometheus counters of the
embedder count every call (workers/telemetry.py).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from adapters.ports import UsageLedger
from domain.errors import ConfigurationError
from domain.job import IngestionJob
from domain.usage import COUNTS, Usage, UsageDay, estimated_cost
from pipeline.bootstrap import Services


def usage_fields(**counts: int) -> dict[str, Usage]:
    """The transition field a stage returns for what it stored or wrote (``Usage`` counts)."""
    return {"usage": Usage(**counts)}


def with_usage(job: IngestionJob, fields: Mapping[str, object], collected: Usage
               ) -> tuple[Mapping[str, object], Usage]:
    """The stage's fields with ``usage`` = the job's so far + what this run added, and what
    it added (``collected`` from the adapters, plus the stage's own ``usage`` field)."""
    declared = fields.get("usage")
    added = collected + (declared if isinstance(declared, Usage) else Usage())
    rest = {name: value for name, value in fields.items() if name != "usage"}
    if added.is_empty:
        return rest, added
    return {**rest, "usage": job.usage + added}, added


@dataclass(frozen=True)
class UsageLine:
    """One tenant's usage on one day (or in all, ``day`` None), priced."""

    tenant: str
    day: date | None
    jobs: int
    usage: Usage
    cost: float
    currency: str
    unpriced_models: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "day": self.day.isoformat() if self.day else None,
                "jobs": self.jobs, **self.usage.counts(),
                "estimated_cost": round(self.cost, 6), "currency": self.currency,
                "unpriced_models": list(self.unpriced_models)}


def report(services: Services, tenant: str | None, since: date | None = None
           ) -> tuple[list[UsageLine], list[UsageLine]]:
    """(per tenant and day, per tenant in all) for ``tenant`` (None: every tenant), from the
    days ``since`` on; costs at the prices in ``settings.usage``."""
    ledger = services.jobs
    if not isinstance(ledger, UsageLedger):
        raise ConfigurationError("this job store cannot add up usage")
    prices, currency = services.settings.usage.prices, services.settings.usage.currency
    days = ledger.usage_by_day(tenant=tenant, since=since)
    lines = [_priced(day.tenant, day.day, day, prices, currency) for day in days]
    totals: dict[str, UsageDay] = {}
    for day in days:
        total = totals.setdefault(day.tenant, UsageDay(day.tenant, day.day))
        total.jobs += day.jobs
        total.usage = total.usage + day.usage
        for mine, theirs in ((total.embed_tokens_by_model, day.embed_tokens_by_model),
                             (total.keyword_tokens_by_model, day.keyword_tokens_by_model)):
            for model, tokens in theirs.items():
                mine[model] = mine.get(model, 0) + tokens
    return lines, [_priced(name, None, total, prices, currency)
                   for name, total in sorted(totals.items())]


def _priced(tenant: str, day: date | None, summed: UsageDay, prices: Mapping[str, float],
            currency: str) -> UsageLine:
    cost, unpriced = estimated_cost(summed, prices)
    return UsageLine(tenant=tenant, day=day, jobs=summed.jobs, usage=summed.usage, cost=cost,
                     currency=currency, unpriced_models=tuple(unpriced))


__all__ = ["COUNTS", "UsageLine", "report", "usage_fields", "with_usage"]
