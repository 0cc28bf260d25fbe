"""The ``conversa`` command line: run the local stack and workers, ingest, watch, search.

Conventions every command follows (tests/e2e/test_cli_conventions.py runs the installed
command for each); a new command goes in its own module ``cli/<command>.py`` and is
registered here with ``cli.command()(...)``:

- Exit codes: 0 done; 1 the work failed (a ConversaError, a failed job or check), printed as
  one line ``conversa: <reason>`` on stderr, never a traceback; 2 a usage error (unknown
  option, missing argument, a bad value or combination), printed by Click as the usage line,
  a ``Try 'conversa <command> -h' for help.`` hint and the error; 130 interrupted.
- ``-h``/``--help`` on every command, ``conversa --version``, and shell completion
  (``conversa --install-completion``). Options with a fixed set of values are enums, so help
  lists the choices and Click refuses others.
- ``--json``: every command that prints data can print it as one JSON object per line
  on stdout instead of text; messages for people go to stderr.
- ``--tenant``/``-t T``: the one tenant a command works on, by default
  ``CONVERSA_DEFAULT_TENANT`` (``default``). ``--all-tenants``, on the commands an operator
  runs across tenants (``jobs``, ``retry``), lifts the scope; it excludes ``--tenant``.
"""

import json
import os
import sys
from datetime import UTC, datetime
from enum import StrEnum
from importlib.metadata import version as package_version
from typing import Annotated, Any

import click
import typer

from cli.usage import usage as usage_command
from domain.errors import ConversaError
from domain.job import IngestionJob
from domain.status import JobStatus, Stage
from pipeline.bootstrap import Services, bootstrap_process
from pipeline.settings import Settings, process_settings

cli = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="ConverSA Ingest: ingest documents through Celery workers and search them.",
)

#: The distribution whose version ``--version`` prints.
DISTRIBUTION = "conversa-ingest"

TenantOption = Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant (default: "
                                                   "CONVERSA_DEFAULT_TENANT or 'default').")]
AllTenantsOption = Annotated[bool, typer.Option("--all-tenants", help="Every tenant "
                                                "(instead of --tenant).")]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]


class Ranking(StrEnum):
    HYBRID = "hybrid"
    VECTOR = "vector"
    FUSED = "fused"


def _show_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"conversa {package_version(DISTRIBUTION)}")
        raise typer.Exit()


@cli.callback()
def _root(
    _version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                           help="Print the version and exit.")] = False,
) -> None:
    """ConverSA Ingest: ingest documents through Celery workers and search them."""


def _settings() -> Settings:
    return process_settings()


def _services(settings: Settings | None = None) -> Services:
    return bootstrap_process(settings)


def _emit(obj: dict[str, Any]) -> None:
    typer.echo(json.dumps(obj, default=str, ensure_ascii=False))


def _job_line(job: IngestionJob) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "document_id": job.document_id,
        "tenant": job.tenant,
        "source": job.source,
        "status": job.status.value,
        "error": job.error.model_dump(mode="json") if job.error else None,
        "chunk_count": job.chunk_count,
        "updated_at": job.updated_at.isoformat(),
    }


def _tenant(settings: Settings, tenant: str | None) -> str:
    return tenant or settings.default_tenant


def _scope(settings: Settings, tenant: str | None, all_tenants: bool) -> str | None:
    """The tenant a command is scoped to; None with --all-tenants."""
    if all_tenants and tenant is not None:
        raise typer.BadParameter("give --tenant or --all-tenants, not both",
                                 param_hint="'--all-tenants'")
    return None if all_tenants else _tenant(settings, tenant)


@cli.command()
def up(as_json: JsonOption = False) -> None:
    """Start the local stack in the background: Valkey, MongoDB-wire server, workers, Flower."""
    from localstack import stack as local_stack

    info = local_stack.up(_settings())
    if as_json:
        _emit({key: info[key] for key in
               ("data_dir", "broker_url", "mongo_url", "flower_url", "api_url")})
        return
    typer.echo(f"local stack running under {info['data_dir']}")
    typer.echo(f"  broker   {info['broker_url']}")
    typer.echo(f"  mongodb  {info['mongo_url']}")
    typer.echo(f"  flower   {info['flower_url']}")
    typer.echo(f"  api      {info['api_url']}")
    typer.echo("stop it with: conversa down")


@cli.command()
def down(as_json: JsonOption = False) -> None:
    """Stop exactly what `conversa up` started."""
    from localstack import stack as local_stack

    stopped = local_stack.down(_settings())
    if as_json:
        _emit({"stopped": stopped})
        return
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@cli.command()
def worker(
    queues: Annotated[str | None, typer.Option("-Q", "--queues", help="Comma-separated stages "
                                               "or queues (default: every queue).")] = None,
    concurrency: Annotated[int | None, typer.Option("-c", "--concurrency")] = None,
    name: Annotated[str | None, typer.Option("-n", "--hostname")] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "INFO",
) -> None:
    """Run a Celery worker for any subset of the stage queues."""
    from adapters.celery.topology import resolve_queues

    try:
        names = resolve_queues(queues)
    except ValueError as exc:
        raise ConversaError(str(exc)) from None
    settings = _settings()
    settings.require_broker_url()
    argv = [sys.executable, "-m", "celery", "-A", "workers", "worker", "-E",
            "-Q", ",".join(names), "-c", str(concurrency or settings.worker.concurrency),
            "--loglevel", loglevel, "-n", name or f"conversa-{os.getpid()}@%h"]
    os.execv(sys.executable, argv)


@cli.command()
def flower(
    port: Annotated[int, typer.Option("--port")] = 5555,
    address: Annotated[str, typer.Option("--address")] = "127.0.0.1",
) -> None:
    """Run Flower, the Celery monitor, for this pipeline's broker (login from
    CONVERSA_FLOWER__BASIC_AUTH; without one, loopback only)."""
    from localstack.flower import flower_command

    argv, env = flower_command(_settings(), address, port)
    os.execve(sys.executable, argv, env)


@cli.command()
def api(
    host: Annotated[str | None, typer.Option("--host", help="Default: CONVERSA_API__HOST.")]
    = None,
    port: Annotated[int | None, typer.Option("--port", help="Default: CONVERSA_API__PORT.")]
    = None,
    workers: Annotated[int, typer.Option("--workers", help="uvicorn processes.")] = 1,
) -> None:
    """Serve the HTTP API (FastAPI on uvicorn)."""
    settings = _settings()
    settings.require_broker_url()
    settings.require_mongo_url()
    os.execv(sys.executable, [sys.executable, "-m", "uvicorn", "api.main:app", "--factory",
                              "--host", host or settings.api.host,
                              "--port", str(port if port is not None else settings.api.port),
                              "--workers", str(workers), "--no-server-header"])


@cli.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(
        help="Files, folders (recursive), s3://bucket/prefix or http(s):// URLs.")],
    tenant: TenantOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until every job is done or "
                                       "failed; exit non-zero if any failed.")] = False,
    as_json: JsonOption = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits.")] = 1800,
    include: Annotated[list[str] | None, typer.Option(
        "--include", help="Only paths (relative to a folder or prefix) matching this glob; "
        "repeatable.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="Leave out paths matching this glob; repeatable.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be ingested; "
                                          "enqueue nothing.")] = False,
    meta: Annotated[list[str] | None, typer.Option(
        "--meta", help="Custom metadata name=value (repeatable; numbers, true/false and ISO "
        "dates are typed, \"...\" keeps text; a name given again makes a list).")] = None,
) -> None:
    """Enqueue one ingestion job per file and print the job ids."""
    from cli.sources import ingest_references
    from domain.metadata import InvalidMetadataError, parse_pairs
    from pipeline.bootstrap import bootstrap

    try:
        metadata = parse_pairs(meta or [])
    except InvalidMetadataError as exc:
        raise typer.BadParameter(str(exc), param_hint="--meta") from None
    settings = _settings()
    tenant_name = _tenant(settings, tenant)
    services = bootstrap(settings) if dry_run else _services(settings)
    jobs, refused = ingest_references(services, tenant_name, paths, include or [],
                                      exclude or [], dry_run=dry_run, as_json=as_json,
                                      emit=_emit, metadata=metadata)
    if wait:
        jobs = _wait(services, [job.job_id for job in jobs], timeout)
    for job in jobs:
        if as_json:
            _emit(_job_line(job))
        else:
            reason = f"  {job.error.stage}: {job.error.message}" if job.error else ""
            typer.echo(f"{job.job_id}  {job.status.value:<9} {job.source}{reason}")
    if refused or (wait and any(job.status is not JobStatus.DONE for job in jobs)):
        raise typer.Exit(1)


def _wait(services: Any, job_ids: list[str], timeout: float) -> list[IngestionJob]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from pipeline.waiting import wait_for_jobs

    console = Console(stderr=True)
    with Progress(TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[failed]} failed"), console=console,
                  transient=not console.is_terminal) as progress:
        bar = progress.add_task("jobs", total=len(job_ids), failed=0)

        def show(jobs: list[IngestionJob]) -> None:
            progress.update(bar, completed=sum(job.status.is_terminal for job in jobs),
                            failed=sum(job.status is JobStatus.FAILED for job in jobs))

        return wait_for_jobs(services, job_ids, timeout, on_progress=show)


@cli.command()
def status(job_id: str, as_json: JsonOption = False) -> None:
    """Where one job is, and why it failed."""
    job = _services().jobs.get(job_id)
    if as_json:
        _emit(job.model_dump(mode="json"))
        return
    for key, value in _job_line(job).items():
        typer.echo(f"{key:<12} {value if value is not None else '-'}")
    if job.keywords:
        typer.echo(f"{'keywords':<12} {', '.join(job.keywords)}")
    if job.metadata:
        typer.echo(f"{'metadata':<12} {json.dumps(job.metadata, ensure_ascii=False)}")
    if not job.usage.is_empty:
        typer.echo(f"{'usage':<12} " + ", ".join(
            f"{name} {value}" for name, value in job.usage.counts().items() if value))


@cli.command()
def jobs(
    tenant: TenantOption = None,
    all_tenants: AllTenantsOption = False,
    status_filter: Annotated[JobStatus | None, typer.Option("--status", "-s")] = None,
    limit: Annotated[int, typer.Option("--limit", min=0)] = 100,
    as_json: JsonOption = False,
) -> None:
    """List the tenant's jobs (or every tenant's), newest first."""
    settings = _settings()
    scope = _scope(settings, tenant, all_tenants)
    found = _services(settings).jobs.list_jobs(tenant=scope, status=status_filter, limit=limit)
    for job in found:
        if as_json:
            _emit(_job_line(job))
        else:
            reason = (f"  {job.error.stage} {job.error.type}: {job.error.message}"
                      if job.error else "")
            typer.echo(f"{job.job_id}  {job.status.value:<9} {job.tenant:<10} "
                       f"{job.source_name}{reason}")


@cli.command()
def search(
    query: str,
    tenant: TenantOption = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k")] = 5,
    document: Annotated[str | None, typer.Option("--document", help="document id")] = None,
    source: Annotated[str | None, typer.Option("--source")] = None,
    content_type: Annotated[str | None, typer.Option("--type", help="e.g. application/pdf")] = None,
    keyword: Annotated[str | None, typer.Option("--keyword")] = None,
    after: Annotated[datetime | None, typer.Option("--after", help="ingested after")] = None,
    before: Annotated[datetime | None, typer.Option("--before", help="ingested before")] = None,
    ranking: Annotated[Ranking, typer.Option("--ranking")] = Ranking.HYBRID,
    where: Annotated[list[str] | None, typer.Option(
        "--where", help="A condition on custom metadata: name=value (again: one of), "
        "name>=value, name>value, name<=value, name<value (numbers or ISO dates); "
        "repeatable, all must hold.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Search the tenant's documents (hybrid ranking by default), with optional filters."""
    from domain.filters import parse_conditions
    from domain.metadata import InvalidMetadataError
    from pipeline.search import SearchFilters
    from pipeline.search import search as run_search

    try:
        conditions = parse_conditions(where or [])
    except InvalidMetadataError as exc:
        raise typer.BadParameter(str(exc), param_hint="--where") from None
    settings = _settings()
    filters = SearchFilters(
        metadata=conditions or None,
        document_id=document, source=source, content_type=content_type, keyword=keyword,
        ingested_after=after.astimezone(UTC) if after else None,
        ingested_before=before.astimezone(UTC) if before else None)
    hits = run_search(_services(settings), _tenant(settings, tenant), query, top_k,
                      filters=filters, ranking=ranking.value)
    for rank, hit in enumerate(hits, 1):
        if as_json:
            _emit(hit.model_dump(mode="json"))
        else:
            place = "".join([f"  page {hit.page}" if hit.page else "",
                             f"  \u00a7 {hit.section}" if hit.section else ""])
            typer.echo(f"{rank}. {hit.score:.3f}  {hit.source}  (chunk {hit.chunk_index}){place}")
            typer.echo(f"   {' '.join(hit.snippet.split())}")
    if not hits and not as_json:
        typer.echo("no results")


@cli.command()
def delete(document_id: str, tenant: TenantOption = None, as_json: JsonOption = False) -> None:
    """Delete a document: its vectors, records and (unless shared) stored objects."""
    from pipeline.documents import delete_document

    settings = _settings()
    document = delete_document(_services(settings), _tenant(settings, tenant), document_id)
    if as_json:
        _emit({"document_id": document.document_id, "source": document.source,
               "deleted": True})
        return
    typer.echo(f"deleted {document.document_id} ({document.source})")


@cli.command()
def retry(
    job_id: Annotated[str | None, typer.Argument(help="The failed job to re-run.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Every failed job instead.")] = False,
    stage: Annotated[Stage | None, typer.Option("--stage", help="With --failed: only jobs "
                                                "that failed at this stage.")] = None,
    tenant: TenantOption = None,
    all_tenants: AllTenantsOption = False,
    as_json: JsonOption = False,
) -> None:
    """Re-run a failed job of the tenant (or every failed job) from the stage that failed."""
    from pipeline.redrive import retry as run_retry
    from pipeline.redrive import retry_failed

    if (job_id is None) == (not failed) or (stage is not None and not failed):
        raise typer.BadParameter(
            "give a JOB_ID, or --failed [--stage S] [--tenant T | --all-tenants]",
            param_hint="'JOB_ID' / '--failed'")
    settings = _settings()
    scope = _scope(settings, tenant, all_tenants)
    if job_id is not None:
        retried = [run_retry(_services(settings), job_id, scope)]
    else:
        retried = retry_failed(_services(settings), stage=stage, tenant=scope)
    for job in retried:
        if as_json:
            _emit(_job_line(job))
        else:
            typer.echo(f"{job.job_id} re-queued at {job.status.value}")
    if job_id is None and not as_json:
        typer.echo(f"{len(retried)} failed jobs re-queued")


@cli.command()
def reconcile(
    older_than: Annotated[float | None, typer.Option(
        "--older-than", help="Seconds without progress before a job counts as stuck "
        "(default: the reconciler's, from the worker settings).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Re-enqueue the stage every stuck job needs (unless a message for it is on the broker)."""
    from pipeline.redrive import reconcile_lost

    services = _services()
    if older_than is None:
        older_than = services.settings.reconciler().stuck_after_seconds
    redriven = reconcile_lost(services, older_than)
    for job_id, stage in redriven:
        if as_json:
            _emit({"job_id": job_id, "stage": stage.value})
        else:
            typer.echo(f"{job_id} re-enqueued at {stage.value}")
    if not as_json:
        typer.echo(f"{len(redriven)} stuck jobs re-enqueued")


@cli.command()
def queues(as_json: JsonOption = False) -> None:
    """Per queue: messages waiting, and messages taken by a worker but not acknowledged."""
    from adapters.celery.broker_counts import queue_depths

    depths = queue_depths(_settings().require_broker_url())
    if not as_json:  # RabbitMQ tells consumers but not unacked counts; Redis the reverse
        typer.echo(f"{'queue':<22} {'stage':<8} {'waiting':>8} {'unacked':>8} {'consumers':>9}")
    for depth in depths:
        if as_json:
            _emit({"queue": depth.queue, "stage": depth.stage, "waiting": depth.waiting,
                   "unacked": depth.unacked, "consumers": depth.consumers})
        else:
            unacked = "-" if depth.unacked is None else str(depth.unacked)
            consumers = "-" if depth.consumers is None else str(depth.consumers)
            typer.echo(f"{depth.queue:<22} {depth.stage or '-':<8} {depth.waiting:>8} "
                       f"{unacked:>8} {consumers:>9}")


@cli.command()
def doctor(as_json: JsonOption = False) -> None:
    """Check settings, broker, MongoDB, objects, vectors, embedder, keywords; exit 1 on failure."""
    from cli.doctor import run_checks

    results = run_checks()
    for result in results:
        if as_json:
            _emit({"check": result.name, "ok": result.ok, "detail": result.detail,
                   "seconds": round(result.seconds, 4)})
        else:
            typer.echo(result.line())
    if not all(result.ok for result in results):
        raise typer.Exit(1)


@cli.command()
def probe(
    hostname: Annotated[str | None, typer.Option("--hostname", "-n", help="One worker's "
                                                 "node name (default: every worker here).")] = None,
    stalled_after: Annotated[float, typer.Option("--stalled-after", help="Seconds with free "
                                                 "slots, waiting messages and nothing "
                                                 "received before a worker counts as stuck.")] = 60,
    stale_after: Annotated[float, typer.Option("--stale-after", help="Seconds without a "
                                               "state update from the consumer loop.")] = 30,
    as_json: JsonOption = False,
) -> None:
    """Liveness probe for the orchestrator: exit 1 if a worker here is alive but not consuming."""
    from adapters.celery.liveness import probe as run_probe

    settings = _settings()
    verdicts = run_probe(settings.data_dir, settings.require_broker_url(), hostname=hostname,
                         stale_after=stale_after, stalled_after=stalled_after)
    for verdict in verdicts:
        if as_json:
            _emit({"hostname": verdict.hostname, "ok": verdict.ok, "reason": verdict.reason})
        else:
            typer.echo(verdict.line())
    if not all(verdict.ok for verdict in verdicts):
        raise typer.Exit(1)


cli.command(name="usage")(usage_command)


@cli.command()
def metrics(
    port: Annotated[int, typer.Option("--port")] = 9464,
    address: Annotated[str, typer.Option("--address")] = "127.0.0.1",
) -> None:
    """Serve Prometheus metrics at /metrics: queues, jobs, stage times, retries, embedder."""
    from cli.metrics import serve

    settings = _settings()
    settings.require_broker_url()
    settings.require_mongo_url()
    typer.echo(f"serving http://{address}:{port}/metrics", err=True)
    serve(settings, address, port)


from cli.sync import sync as _sync  # noqa: E402  (it uses the options above)

cli.command(name="sync")(_sync)
# Commands kept in their own modules (they import this one's helpers lazily).
from cli import check as check_command  # noqa: E402
from cli import reembed as reembed_command  # noqa: E402
from cli import reindex as reindex_command  # noqa: E402

cli.command()(reindex_command.reindex)
cli.command()(check_command.check)
cli.command()(reembed_command.reembed)


def _explain(exc: BaseException) -> str | None:
    """One line for errors that mean a server is missing; None for anything else."""
    import kombu.exceptions
    import redis.exceptions

    if isinstance(exc, redis.exceptions.ConnectionError | kombu.exceptions.OperationalError):
        return (f"cannot reach the broker or Redis: {exc}. Is the local stack up "
                "(`conversa up`) or CONVERSA_BROKER_URL right?")
    return None


def main() -> None:
    """Click's standalone mode prints usage errors (usage line, hint, exit 2) and handles
    ``--help``, ``--version`` and ``typer.Exit``: since Typer 0.26 those are the exceptions of
    the Click that Typer vendors, which ``import click`` does not name, so they are left to
    it (raise ``typer.BadParameter`` for a usage error of your own). Only our own errors,
    and anything unexpected, are turned into one line and exit 1."""
    try:
        cli(prog_name="conversa")
    except click.ClickException as exc:  # raised with the real Click: still a usage error
        typer.echo(f"Error: {exc.format_message()}\nTry 'conversa -h' for help.", err=True)
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # typer's own click: a usage error exits 2
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"conversa: {exc}", err=True)
        code = getattr(exc, "exit_code", 2)
        sys.exit(code if isinstance(code, int) else 2)
    except ConversaError as exc:
        typer.echo(f"conversa: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # the last line of defence: one line, never a traceback
        message = _explain(exc)
        if message is None:
            message = f"unexpected {type(exc).__name__}: {exc}"
        typer.echo(f"conversa: {message}", err=True)
        sys.exit(1)
