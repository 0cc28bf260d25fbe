"""`conversa reindex`: rebuild a tenant's vector index elsewhere from the stored embeddings."""

import json
from typing import Annotated, Any

import click
import typer

from domain.indexes import IndexRoute, ReindexRun


def reindex(
    to: Annotated[str | None, typer.Option(
        "--to", help="The new index: lancedb:<folder>[#table] or pinecone:<host>[#namespace] "
        "(the API key is CONVERSA_PINECONE__API_KEY's).")] = None,
    tenant: Annotated[str | None, typer.Option(
        "--tenant", "-t", help="One tenant (default: CONVERSA_DEFAULT_TENANT).")] = None,
    all_tenants: Annotated[bool, typer.Option(
        "--all-tenants", help="Every tenant with documents, one after the other.")] = False,
    documents_per_step: Annotated[int, typer.Option(
        "--step", min=1, help="Documents copied between two progress records.")] = 50,
    abort: Annotated[bool, typer.Option(
        "--abort", help="Give up the re-index under way; the tenant stays where it is.")]
    = False,
    show: Annotated[bool, typer.Option(
        "--status", help="Show the tenant's index and its last re-index, change nothing.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Copy every current version's stored vectors into another index (no embedder call),
    then switch search to it. Run it again after a kill: it resumes where it stopped."""
    from cli.main import _services, _settings, _tenant
    from domain.errors import PermanentError
    from domain.indexes import parse_target
    from pipeline import reindex as runs

    if tenant is not None and all_tenants:
        raise click.UsageError("give --tenant or --all-tenants, not both")
    if abort and show:
        raise click.UsageError("give --abort or --status, not both")
    if (to is None) != (abort or show):
        raise click.UsageError("give --to <target>, or --abort, or --status")
    try:
        target = parse_target(to) if to is not None else None
    except PermanentError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None
    if target is not None and target.name and all_tenants:
        raise click.UsageError("a #name puts one tenant in that table or namespace: "
                               "give --tenant with it")
    settings = _settings()
    services = _services(settings)
    tenants = runs.pages(services).tenants() if all_tenants else [_tenant(settings, tenant)]

    def emit(run: ReindexRun, final: bool) -> None:
        if as_json:
            if final:
                typer.echo(json.dumps(run.model_dump(mode="json")))
            return
        if final:
            typer.echo(_run_line(run))
        else:
            typer.echo(f"{run.tenant}: {run.documents_copied} documents, "
                       f"{run.vectors_copied} vectors copied", err=True)

    for name in tenants:
        if show:
            route, run = runs.status(services, name)
            _show(name, route, run, as_json)
        elif abort:
            emit(runs.abort(services, name), True)
        else:
            assert target is not None
            emit(runs.reindex(services, name, target, documents_per_step=documents_per_step,
                              progress=lambda run: emit(run, False)), True)


def _run_line(run: ReindexRun) -> str:
    line = (f"{run.tenant}: re-index to {run.target.spec} {run.state}: "
            f"{run.documents_copied} documents, {run.vectors_copied} vectors")
    if run.documents_skipped:
        line += (f"; {run.documents_skipped} documents had no readable stored embeddings "
                 f"(e.g. {', '.join(run.skipped[:3])}): see `conversa check`")
    return line


def _show(tenant: str, route: IndexRoute | None, run: ReindexRun | None, as_json: bool) -> None:
    active = route.active.spec if route is not None and route.active else "settings"
    building = route.building.spec if route is not None and route.building else None
    if as_json:
        data: dict[str, Any] = {"tenant": tenant, "active": active, "building": building,
                                "run": run.model_dump(mode="json") if run else None}
        typer.echo(json.dumps(data))
        return
    typer.echo(f"{tenant}: served from {active}"
               + (f", re-index into {building} under way" if building else ""))
    if run is not None:
        typer.echo("  last run: " + _run_line(run))
