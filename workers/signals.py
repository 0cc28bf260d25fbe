"""Worker signals: build each pool process's adapters when it starts."""

from typing import Any

from celery.signals import worker_process_init

from workers import context


@worker_process_init.connect
def _build_services(**_: Any) -> None:
    context.reset()
    built = context.services()
    # Load the embedding model now, not in the middle of the first job's time limit.
    built.embedder.generate_embeddings(["warm up"])
