"""The Celery application. Configuration is read lazily from celeryconfig on first use."""

from celery import Celery

app = Celery("conversa", include=["workers.tasks", "workers.maintenance", "workers.signals"])
app.config_from_object("celeryconfig")
