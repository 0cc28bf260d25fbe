"""`conversa usage`: what jobs cost, per tenant and day, with an estimated price."""

from datetime import date
from typing import Annotated, Any

import typer

from pipeline.usage import UsageLine


def usage(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="One tenant (default: "
                                               "CONVERSA_DEFAULT_TENANT or 'default').")] = None,
    all_tenants: Annotated[bool, typer.Option("--all-tenants", help="Every tenant.")] = False,
    since: Annotated[str | None, typer.Option("--since", help="From this day on (YYYY-MM-DD, "
                                              "UTC; default: every day).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line: a line "
                                          "per tenant and day, then one per tenant in all "
                                          "(\"day\": null).")] = False,
) -> None:
    """What jobs cost per tenant and day (of their creation): embedder and keyword requests
    and tokens, bytes stored, vectors written, and the price at CONVERSA_USAGE__PRICES."""
    from cli.main import _services, _settings
    from pipeline.usage import report

    if tenant is not None and all_tenants:
        raise typer.BadParameter("give --tenant T or --all-tenants, not both",
                                 param_hint="--tenant")
    try:
        first = date.fromisoformat(since) if since is not None else None
    except ValueError:
        raise typer.BadParameter(f"{since!r} is not a day (YYYY-MM-DD)",
                                 param_hint="--since") from None
    settings = _settings()
    wanted = None if all_tenants else tenant or settings.default_tenant
    days, totals = report(_services(settings), wanted, first)
    if as_json:
        for line in [*days, *totals]:
            typer.echo(_json(line.as_dict()))
        return
    header = (f"{'tenant':<16} {'day':<10} {'jobs':>6} {'embed req':>9} {'embed tok':>11} "
              f"{'kw req':>7} {'kw tok':>9} {'bytes':>12} {'vectors':>8} {'cost':>11}")
    typer.echo(header)
    for line in days:
        typer.echo(_row(line, line.day.isoformat() if line.day else ""))
    for line in totals:
        typer.echo(_row(line, "total"))
    if not days:
        typer.echo("no jobs")
    unpriced = sorted({model for line in totals for model in line.unpriced_models})
    if unpriced:
        typer.echo(f"no price for {', '.join(unpriced)} (counted as free; set "
                   "CONVERSA_USAGE__PRICES)")


def _row(line: UsageLine, day: str) -> str:
    u = line.usage
    return (f"{line.tenant:<16} {day:<10} {line.jobs:>6} {u.embed_requests:>9} "
            f"{u.embed_tokens:>11} {u.keyword_requests:>7} {u.keyword_tokens:>9} "
            f"{u.bytes_stored:>12} {u.vectors_written:>8} {line.cost:>7.4f} {line.currency}")


def _json(obj: dict[str, Any]) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False)
