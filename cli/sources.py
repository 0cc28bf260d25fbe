"""`conversa ingest`'s references beyond local files: bucket prefixes and URLs, globs, --dry-run.

Local files are all checked before anything is enqueued (as always); a bucket prefix is
listed page by page and enqueued as it is listed, so an object over the size limit is reported
on its own line (and the command exits 1) while the others go on.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import typer

from domain.errors import PermanentError
from domain.job import IngestionJob
from domain.uploads import check_size
from pipeline.listing import Found, remote_event, walk
from pipeline.sources import S3_SCHEME, is_remote


def gather(services: Any, references: Sequence[str], include: Sequence[str],
           exclude: Sequence[str]) -> tuple[list[Found], list[str]]:
    """Local files found (all of them, checked) and the remote references, in order."""
    local: list[Found] = []
    remote: list[str] = []
    limit = services.settings.max_upload_bytes
    for reference in references:
        if is_remote(reference):
            if not reference.startswith(S3_SCHEME):
                services.urls.check(reference)  # refused at once, before anything is enqueued
            remote.append(reference)
            continue
        for found in walk(services, reference, include, exclude):
            check_size(found.size, limit, name=found.source)
            local.append(found)
    return local, remote


def ingest_references(services: Any, tenant: str, references: Sequence[str],
                      include: Sequence[str], exclude: Sequence[str], *, dry_run: bool,
                      as_json: bool, emit: Callable[[dict[str, Any]], None],
                      metadata: Mapping[str, object] | None = None
                      ) -> tuple[list[IngestionJob], int]:
    """Enqueue (or, with ``dry_run``, print) what the references hold; returns the jobs and
    how many items were refused."""
    from pipeline.producer import enqueue, upload_file_event
    from pipeline.uploads import enqueue_staged

    local, remote = gather(services, references, include, exclude)
    if not local and not remote:
        raise PermanentError("no files to ingest")
    jobs: list[IngestionJob] = []
    refused = 0
    for found in _remote_items(services, remote, include, exclude, local):
        if found.path is None:
            try:
                check_size(found.size, services.settings.max_upload_bytes, name=found.source)
            except PermanentError as exc:
                refused += 1
                _say(as_json, emit, {"action": "refused", "source": found.source,
                                     "error": str(exc)}, f"refused  {found.source}  {exc}")
                continue
        if dry_run:
            size = "?" if found.size is None else str(found.size)
            _say(as_json, emit, {"action": "ingest", "source": found.source,
                                 "size": found.size},
                 f"would ingest  {found.source}  ({size} bytes)")
            continue
        if found.path is not None:
            event = upload_file_event(services, found.path, tenant, metadata=metadata)
            jobs.append(enqueue_staged(services, event))
        else:
            jobs.append(enqueue(services, remote_event(tenant, found, metadata)))
    return jobs, refused


def _remote_items(services: Any, remote: Sequence[str], include: Sequence[str],
                  exclude: Sequence[str], local: list[Found]) -> Iterator[Found]:
    yield from local
    for reference in remote:
        listed = walk(services, reference, include, exclude)
        empty = True
        for found in listed:
            empty = False
            yield found
        if empty:
            typer.echo(f"conversa: nothing to ingest under {reference}", err=True)


def _say(as_json: bool, emit: Callable[[dict[str, Any]], None], obj: dict[str, Any],
         line: str) -> None:
    if as_json:
        emit(obj)
    else:
        typer.echo(line)
