"""`conversa check`: compare records, stored objects and vectors; with --repair, fix them.

Exit status, as fsck's: 0 nothing found; 1 the check could not run (a server unreachable,
like every command); 2 usage error; 3 problems were found and all repaired (--repair, and
the check after it is clean); 4 problems found and left (no --repair, or some could not be
repaired).
"""

import json
from typing import Annotated, Any

import click
import typer

EXIT_REPAIRED = 3
EXIT_PROBLEMS = 4


def check(
    tenant: Annotated[str | None, typer.Option(
        "--tenant", "-t", help="One tenant (default: CONVERSA_DEFAULT_TENANT).")] = None,
    all_tenants: Annotated[bool, typer.Option(
        "--all-tenants", help="Every tenant with documents.")] = False,
    repair: Annotated[bool, typer.Option(
        "--repair", help="Fix what was found, then check again.")] = False,
    examples: Annotated[int, typer.Option("--examples", min=0,
                                          help="Examples shown per kind.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per tenant.")]
    = False,
) -> None:
    """Find vectors of no current version, current versions with missing vectors, documents
    whose objects are gone, objects nothing uses and jobs stuck without a message; exit 0
    only when nothing was found (3: all repaired, 4: problems left)."""
    from adapters.celery.broker_counts import jobs_in_flight
    from cli.main import _services, _settings, _tenant
    from pipeline import check as checks
    from pipeline.reindex import pages

    if tenant is not None and all_tenants:
        raise click.UsageError("give --tenant or --all-tenants, not both")
    settings = _settings()
    services = _services(settings)
    tenants = pages(services).tenants() if all_tenants else [_tenant(settings, tenant)]
    broker = settings.require_broker_url()
    worst = 0
    for name in tenants:
        report = checks.check(services, name, in_flight=jobs_in_flight(broker))
        line: dict[str, Any] = report.as_dict(examples)
        code = 0 if report.clean else EXIT_PROBLEMS
        if repair and not report.clean:
            repairs = checks.repair(services, report)
            after = checks.check(services, name, in_flight=jobs_in_flight(broker))
            line.update(repaired=repairs.as_dict(), after=after.as_dict(examples))
            code = EXIT_REPAIRED if after.clean else EXIT_PROBLEMS
        worst = max(worst, code)
        if as_json:
            typer.echo(json.dumps(line, default=str))
        else:
            _print(line)
    if worst:
        raise typer.Exit(worst)


def _print(line: dict[str, Any]) -> None:
    tenant = line["tenant"]
    if line["clean"]:
        typer.echo(f"{tenant}: clean")
        return
    typer.echo(f"{tenant}: " + ", ".join(f"{count} {kind.replace('_', ' ')}"
                                         for kind, count in line["counts"].items() if count))
    for kind, shown in line["examples"].items():
        for example in shown:
            typer.echo(f"  {kind:<16} {example['ref']}  {example['detail']}")
    repaired = line.get("repaired")
    if repaired is None:
        return
    fixed = ", ".join(f"{count} {kind.replace('_', ' ')}"
                      for kind, count in repaired["fixed"].items() if count)
    typer.echo(f"{tenant}: repaired {fixed or 'nothing'}")
    for left in repaired["left"]:
        typer.echo(f"  left {left['kind']:<16} {left['ref']}  {left['reason']}")
    typer.echo(f"{tenant}: " + ("clean after repair" if line["after"]["clean"] else
                                "problems left: " + ", ".join(
                                    f"{count} {kind.replace('_', ' ')}" for kind, count
                                    in line["after"]["counts"].items() if count)))
