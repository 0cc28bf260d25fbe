"""The ``conversa`` command line: run the local stack and workers, ingest, watch, search."""

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from domain.errors import ConversaError, PermanentError
from domain.job import IngestionJob
from domain.status import JobStatus
from pipeline.settings import Settings, load_settings

cli = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="ConverSA Ingest: ingest documents through Celery workers and search them.",
)

TenantOption = Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant (default: "
                                                   "CONVERSA_DEFAULT_TENANT or 'default').")]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]


def _settings() -> Settings:
    return load_settings()


def _services(settings: Settings | None = None) -> Any:
    from pipeline.bootstrap import bootstrap
    from workers.app import app
    from workers.dispatch import CeleryDispatcher

    return bootstrap(settings or _settings(), dispatcher=CeleryDispatcher(app))


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


@cli.command()
def up() -> None:
    """Start the local stack in the background: Valkey, MongoDB-wire server, workers, Flower."""
    from workers import local_stack

    info = local_stack.up(_settings())
    typer.echo(f"local stack running under {info['data_dir']}")
    typer.echo(f"  broker   {info['broker_url']}")
    typer.echo(f"  mongodb  {info['mongo_url']}")
    typer.echo(f"  flower   {info['flower_url']}")
    typer.echo("stop it with: conversa down")


@cli.command()
def down() -> None:
    """Stop exactly what `conversa up` started."""
    from workers import local_stack

    stopped = local_stack.down(_settings())
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
    from workers.topology import resolve_queues

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
    """Run Flower, the Celery monitor, for this pipeline's broker."""
    _settings().require_broker_url()
    os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", "workers", "flower",
                              f"--address={address}", f"--port={port}"])


def _expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise PermanentError(f"no such file or folder: {path}")
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()
                                and not any(part.startswith(".") for part in p.parts)))
        else:
            files.append(path)
    return files


@cli.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (recursive).")],
    tenant: TenantOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until every job is done or "
                                       "failed; exit non-zero if any failed.")] = False,
    as_json: JsonOption = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits.")] = 1800,
) -> None:
    """Enqueue one ingestion job per file and print the job ids."""
    from pipeline.producer import enqueue, file_event, upload_file_event

    settings = _settings()
    tenant_name = _tenant(settings, tenant)
    files = _expand(paths)
    if not files:
        raise PermanentError("no files to ingest")
    for path in files:  # every file is checked before anything is enqueued
        file_event(path, tenant_name, settings.max_upload_bytes)
    services = _services(settings)
    jobs = [enqueue(services, upload_file_event(services, path, tenant_name)) for path in files]
    if wait:
        jobs = _wait(services, [job.job_id for job in jobs], timeout)
    for job in jobs:
        if as_json:
            _emit(_job_line(job))
        else:
            reason = f"  {job.error.stage}: {job.error.message}" if job.error else ""
            typer.echo(f"{job.job_id}  {job.status.value:<9} {job.source}{reason}")
    if wait and any(job.status is not JobStatus.DONE for job in jobs):
        raise typer.Exit(1)


def _wait(services: Any, job_ids: list[str], timeout: float) -> list[IngestionJob]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    deadline = time.monotonic() + timeout
    console = Console(stderr=True)
    with Progress(TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[failed]} failed"), console=console,
                  transient=not console.is_terminal) as progress:
        bar = progress.add_task("jobs", total=len(job_ids), failed=0)
        while True:
            jobs = [services.jobs.get(job_id) for job_id in job_ids]
            finished = sum(job.status.is_terminal for job in jobs)
            failed = sum(job.status is JobStatus.FAILED for job in jobs)
            progress.update(bar, completed=finished, failed=failed)
            if finished == len(jobs):
                return jobs
            if time.monotonic() > deadline:
                raise ConversaError(f"{len(jobs) - finished} jobs still running after "
                                    f"{timeout:.0f} s; see `conversa jobs`")
            time.sleep(0.3)


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


@cli.command()
def jobs(
    tenant: TenantOption = None,
    status_filter: Annotated[str | None, typer.Option("--status", "-s")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first."""
    try:
        wanted = JobStatus(status_filter) if status_filter else None
    except ValueError:
        raise ConversaError(f"unknown status {status_filter!r}; choose from "
                            + ", ".join(s.value for s in JobStatus)) from None
    settings = _settings()
    found = _services(settings).jobs.list_jobs(tenant=tenant, status=wanted, limit=limit)
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
    as_json: JsonOption = False,
) -> None:
    """Semantic search over the tenant's documents."""
    from pipeline.search import search as run_search

    settings = _settings()
    hits = run_search(_services(settings), _tenant(settings, tenant), query, top_k)
    for rank, hit in enumerate(hits, 1):
        if as_json:
            _emit(hit.model_dump(mode="json"))
        else:
            snippet = " ".join(hit.text.split())[:240]
            typer.echo(f"{rank}. {hit.score:.3f}  {hit.source}  (chunk {hit.chunk_index})")
            typer.echo(f"   {snippet}")
    if not hits and not as_json:
        typer.echo("no results")


@cli.command()
def delete(document_id: str, tenant: TenantOption = None) -> None:
    """Delete a document: its vectors, records and (unless shared) stored objects."""
    from pipeline.documents import delete_document

    settings = _settings()
    document = delete_document(_services(settings), _tenant(settings, tenant), document_id)
    typer.echo(f"deleted {document.document_id} ({document.source})")


@cli.command()
def retry(job_id: str) -> None:
    """Re-run a failed job from the stage that failed."""
    from pipeline.redrive import retry as run_retry

    job = run_retry(_services(), job_id)
    typer.echo(f"{job.job_id} re-queued at {job.status.value}")


@cli.command()
def reconcile(
    older_than: Annotated[float, typer.Option("--older-than", help="Seconds without progress "
                                              "before a job counts as stuck.")] = 900,
) -> None:
    """Re-enqueue the stage every stuck job needs."""
    from pipeline.redrive import reconcile as run_reconcile

    redriven = run_reconcile(_services(), older_than)
    for job_id, stage in redriven:
        typer.echo(f"{job_id} re-enqueued at {stage.value}")
    typer.echo(f"{len(redriven)} stuck jobs re-enqueued")


def _explain(exc: BaseException) -> str | None:
    """One line for errors that mean a server is missing; None for anything else."""
    import kombu.exceptions
    import redis.exceptions

    if isinstance(exc, redis.exceptions.ConnectionError | kombu.exceptions.OperationalError):
        return (f"cannot reach the broker (Redis): {exc}. Is the local stack up "
                "(`conversa up`) or CONVERSA_BROKER_URL right?")
    return None


def main() -> None:
    try:
        code = cli(standalone_mode=False)
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConversaError as exc:
        typer.echo(f"conversa: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # the last line of defence: one line, never a traceback
        message = _explain(exc)
        if message is None:
            message = f"unexpected {type(exc).__name__}: {exc}"
        typer.echo(f"conversa: {message}", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
