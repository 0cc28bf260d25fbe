"""Worker signals: set each pool process's malloc up and build its adapters when it starts;
hand freed memory back after each task (workers/memory.py)."""

import logging
import threading
from typing import Any

from celery.signals import task_postrun, worker_init, worker_process_init

from domain.errors import ConfigurationError
from pipeline.bootstrap import check_vector_dimension
from pipeline.settings import process_settings
from workers import context, memory

log = logging.getLogger(__name__)


@worker_init.connect
def _check_configuration(**_: Any) -> None:
    """Refuse to start on settings that would fail every job (e.g. a dimension mismatch).

    Celery logs and swallows exceptions from signal handlers, so this exits outright."""
    try:
        check_vector_dimension(process_settings())
    except ConfigurationError as exc:
        raise SystemExit(f"conversa worker: {exc}") from None


@worker_process_init.connect
def _build_services(**_: Any) -> None:
    worker = process_settings().worker
    memory.tune(arena_max=worker.malloc_arena_max,
                mmap_threshold_bytes=worker.malloc_mmap_threshold_bytes)
    context.reset()
    built = context.services()
    # Load the embedding model now, not in the middle of the first job's time limit, but
    # beside this handler: the pool kills a process that has not reported itself up within
    # its alive timeout (4 s), and a slow model load or a slow embedding API would otherwise
    # kill every new pool process in turn (found by killing pool processes under load).
    threading.Thread(target=_warm_up, args=(built,), name="embedder-warm-up",
                     daemon=True).start()


def _warm_up(built: Any) -> None:
    try:
        built.embedder.generate_embeddings(["warm up"])
    except Exception as exc:  # the first job will meet the same problem, and report it
        log.warning("embedder warm-up failed: %s", exc)


@task_postrun.connect
def _trim_memory(**_: Any) -> None:
    if process_settings().worker.malloc_trim_after_task:
        memory.trim()
