"""Readiness: whether every server the pipeline needs answers a cheap call through its port."""

from collections.abc import Callable, Mapping

from domain.errors import ConversaError
from pipeline.accounts import AccountServices
from pipeline.bootstrap import Services

PROBE_TENANT = "readyz"


def readiness(services: Services, accounts: AccountServices,
              extra: Mapping[str, Callable[[], object]] | None = None) -> dict[str, str | None]:
    """Each component's problem, or None where it answered. Never raises for a server that
    is down: that is what it reports."""
    probes: dict[str, Callable[[], object]] = {
        "mongodb": lambda: (services.jobs.list_jobs(tenant=PROBE_TENANT, limit=1),
                            accounts.users.get_key("0" * 16)),
        "object_store": lambda: services.objects.head(f"{PROBE_TENANT}/probe"),
        "vector_index": lambda: services.vectors.count(PROBE_TENANT),
        **(extra or {}),
    }
    report: dict[str, str | None] = {}
    for name, probe in probes.items():
        try:
            probe()
        except ConversaError as exc:
            report[name] = str(exc) or type(exc).__name__
        except Exception as exc:  # an unreachable server may raise anything its SDK has
            report[name] = type(exc).__name__
        else:
            report[name] = None
    return report
