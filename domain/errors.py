"""The error kinds every adapter translates into, so the pipeline can decide retry or fail."""


class ConversaError(Exception):
    """Base of every error this project raises on purpose."""


class TransientError(ConversaError):
    """A failure that may pass if the same call is tried again later (timeouts, 429, 5xx).

    ``retry_after`` is the delay in seconds the remote side asked for, when it said one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ConversaError):
    """A failure that trying again cannot fix (bad input, 4xx, a missing object)."""


class NotFoundError(PermanentError):
    """The thing asked for does not exist (or belongs to another tenant)."""


class ConfigurationError(ConversaError):
    """A setting is missing or wrong; the message names it."""
