"""The reduced chaos set, in the normal test run: one scenario per kind of fault, one after the
other on one shared stack (each with three tenants of its own), each checked by the one
checker. The full set, each scenario on a fresh stack, is `bench/chaos.py`."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.scenarios import BY_NAME, REDUCED, run_on
from tests.chaos.stack import ChaosStack, chaos_stack
from tests.support.chaos_check import Report, table

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.chaos]

#: Documents per tenant in the reduced set (the full set's scenarios use more).
PER_TENANT = 3
_reports: list[Report] = []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    with chaos_stack(tmp_path_factory.mktemp("chaos")) as running:
        yield running
    if _reports:
        print("\n" + table(_reports), file=sys.stderr)


@pytest.mark.parametrize("name", REDUCED)
def test_nothing_is_lost_doubled_orphaned_or_leaked(stack: ChaosStack, name: str,
                                                    tmp_path: Path) -> None:
    report = run_on(stack, BY_NAME[name], per_tenant=PER_TENANT)
    _reports.append(report)
    print(f"\n{name}: {report.verdict}; " + "; ".join(
        note for note in report.notes if note.startswith(("phases", "the fault", "pool"))),
        file=sys.stderr)
    assert report.jobs > 0
    # Integrity is asserted; the recovery time is in the table (the bound is checked by
    # bench/chaos.py, where a busy shared machine cannot make the test run flaky).
    assert report.intact, "\n".join([table([report]), *report.problems[:30], *report.notes[:3]])
