"""The Celery application. Configuration is read lazily from celeryconfig on first use."""

from celery import Celery

from workers import logging_setup  # noqa: F401  (JSON logs when CONVERSA_LOG_FORMAT=json)
from workers.liveness import LivenessStep

app = Celery("conversa", include=["workers.tasks", "workers.maintenance", "workers.signals",
                                     "workers.telemetry", "workers.callbacks"])
app.config_from_object("celeryconfig")
app.steps["consumer"].add(LivenessStep)
