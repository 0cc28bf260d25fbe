"""Notifiers that deliver verification codes: an outbox file locally, SMTP in production."""
