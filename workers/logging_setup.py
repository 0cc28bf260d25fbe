"""Structured worker logs: with ``CONVERSA_LOG_FORMAT=json`` every log line is one JSON object,
and every line written while a stage runs carries its job id, tenant, stage and attempt.

The context is set when a stage task starts in its pool process (``task_prerun``) and cleared
when it ends (``task_postrun``), so Celery's own lines ("succeeded", "retry") carry it too.
Only ids go into the context: never document text, never settings.
"""

import json
import logging
import os
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger, task_postrun, task_prerun

from adapters.celery.topology import STAGE_QUEUES
from domain.errors import ConfigurationError, ConversaError
from pipeline.settings import process_settings
from workers import context

LOG_FORMAT_VARIABLE = "CONVERSA_LOG_FORMAT"
CONTEXT_FIELDS = ("job_id", "tenant", "stage", "attempt", "task_id")

_STAGE_OF_TASK = {spec.task_name: spec.stage.value for spec in STAGE_QUEUES.values()}
_context: ContextVar[dict[str, Any] | None] = ContextVar("conversa_log_context", default=None)


def json_wanted() -> bool:
    """``CONVERSA_LOG_FORMAT=json`` (the setting, so ``.env`` counts too)."""
    try:
        return process_settings().log_format == "json"
    except ConfigurationError:  # the worker reports a wrong setting itself, by name
        return os.environ.get(LOG_FORMAT_VARIABLE, "").strip().lower() == "json"


class ContextFilter(logging.Filter):
    """Puts the running stage's ids on every record (None outside a stage)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get() or {}
        if context.get("tenant") is None and context.pop("tenant_unread", False):
            context["tenant"] = _tenant_of(context.get("job_id"))
        for field in CONTEXT_FIELDS:
            setattr(record, field, context.get(field))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _install(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())


@after_setup_logger.connect
@after_setup_task_logger.connect
def _on_logger_setup(logger: logging.Logger | None = None, **_: Any) -> None:
    if json_wanted() and logger is not None:
        _install(logger)
        _install(logging.getLogger("celery.worker.strategy"))


@task_prerun.connect
def _enter_stage(task_id: str | None = None, task: Any = None, args: Any = None,
                 **_: Any) -> None:
    stage = _STAGE_OF_TASK.get(getattr(task, "name", ""))
    if stage is None:
        return
    job_id = args[0] if args and isinstance(args[0], str) else None
    # The tenant is read with the first line logged (``ContextFilter``), not here: most
    # stages log nothing, and reading the job for every one cost a round trip each.
    _context.set({"job_id": job_id, "tenant": None, "tenant_unread": job_id is not None,
                  "stage": stage, "attempt": task.request.retries + 1, "task_id": task_id})


@task_postrun.connect
def _leave_stage(**_: Any) -> None:
    _context.set(None)


def _tenant_of(job_id: str | None) -> str | None:
    if job_id is None:
        return None
    try:
        return context.services().jobs.get(job_id).tenant
    except ConversaError:
        return None
