"""Entry points that run the pipeline: the Celery app and tasks, and the conversa CLI."""

from workers.app import app

__all__ = ["app"]
