"""`conversa sync`: make a tenant's documents follow a folder or an ``s3://`` prefix."""

from collections import Counter
from typing import Annotated

import typer

from cli.main import JsonOption, TenantOption, _emit, _services, _settings, _tenant


def sync(
    path: Annotated[str, typer.Argument(help="A folder, a file or s3://bucket/prefix.")],
    tenant: TenantOption = None,
    delete: Annotated[bool, typer.Option(
        "--delete", help="Also delete the documents whose source is gone.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print what would be done; change nothing.")] = False,
    include: Annotated[list[str] | None, typer.Option(
        "--include", help="Only paths matching this glob (as for ingest); repeatable.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="Leave out paths matching this glob; repeatable.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Ingest what is new or changed under PATH; with --delete, delete what is gone.
    Run again with nothing changed, it enqueues nothing."""
    from pipeline.bootstrap import bootstrap
    from pipeline.sources import URL_SCHEMES
    from pipeline.sync import sync as run_sync

    if path.startswith(URL_SCHEMES):
        raise typer.BadParameter("sync takes a folder or s3://bucket/prefix, not a URL",
                                 param_hint="PATH")
    settings = _settings()
    services = bootstrap(settings) if dry_run else _services(settings)
    counts: Counter[str] = Counter()
    prefix = "would " if dry_run else ""
    for item in run_sync(services, _tenant(settings, tenant), path, delete=delete,
                         dry_run=dry_run, include=include or [], exclude=exclude or []):
        counts[item.action] += 1
        if as_json:
            _emit({"action": item.action, "source": item.source,
                   "document_id": item.document_id, "dry_run": dry_run,
                   "job_id": item.job.job_id if item.job else None,
                   "reason": item.reason or None})
        elif item.action != "unchanged":
            verb = {"new": "ingest", "changed": "update", "delete": "delete"}.get(item.action)
            shown = f"{prefix}{verb}" if verb else item.action
            job = f"  {item.job.job_id}" if item.job else ""
            reason = f"  {item.reason}" if item.reason else ""
            typer.echo(f"{shown:<14} {item.source}{job}{reason}")
    if not as_json:
        order = ("new", "changed", "unchanged", "in-flight", "delete", "refused")
        typer.echo(", ".join(f"{counts[a]} {a}" for a in order if counts[a]) or "nothing found")
    if counts["refused"]:
        raise typer.Exit(1)
