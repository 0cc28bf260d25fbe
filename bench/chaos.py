"""The full chaos set: every scenario of tests/chaos on its own fresh stack, then one table.

Each scenario starts Valkey, the MongoDB-wire server, moto's S3 behind a fault proxy, the fake
Pinecone and OpenAI servers, Celery workers, beat and the HTTP API (all on 127.0.0.1), runs the
workload of three tenants through the CLI and the API, injects its fault, waits for every job
and runs the checker. Exit 1 when any scenario lost, doubled, orphaned or leaked anything, or
recovered slower than its bound.

    .venv/bin/python bench/chaos.py                 # every scenario (about 15 minutes here)
    .venv/bin/python bench/chaos.py --reduced       # the set the test run has
    .venv/bin/python bench/chaos.py -k FLUSHALL -v  # the ones whose name has FLUSHALL, with
                                                    # every problem the checker found
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos.scenarios import BY_NAME, REDUCED, SCENARIOS, run_scenario
from tests.support.chaos_check import Report, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reduced", action="store_true", help="only the reduced set")
    parser.add_argument("-k", dest="keyword", help="only scenarios whose name contains this")
    parser.add_argument("--per-tenant", type=int, default=None,
                        help="documents per tenant (default: each scenario's own)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every problem")
    args = parser.parse_args()
    chosen = [BY_NAME[name] for name in REDUCED] if args.reduced else list(SCENARIOS)
    if args.keyword:
        chosen = [s for s in chosen if args.keyword.lower() in s.name.lower()]
    reports: list[Report] = []
    for scenario in chosen:
        with tempfile.TemporaryDirectory(prefix="chaos-") as workdir:
            try:
                report = run_scenario(scenario, Path(workdir), per_tenant=args.per_tenant)
            except Exception as exc:  # a scenario that cannot run is a row, not the end
                report = Report(scenario.name, problems=[f"run: {type(exc).__name__}: {exc}"])
                report.lost = -1
        reports.append(report)
        print(f"{scenario.name}: {report.verdict} in {report.seconds:.0f} s", file=sys.stderr,
              flush=True)
        if args.verbose or not report.ok:
            for line in report.problems[:40] + report.notes[:6]:
                print(f"    {line}", file=sys.stderr)
    print(table(reports))
    return 0 if all(r.ok and r.lost >= 0 for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
