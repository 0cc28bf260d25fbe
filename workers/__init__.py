"""The Celery runtime: the app, the stage and maintenance tasks, signals, telemetry, liveness."""

from workers.app import app

__all__ = ["app"]
