"""Notifier adapters: SMTP for production, an outbox file (and the log) for the local stack.

The outbox is a JSON-lines file, one message per line, appended under a lock so several API
processes can share it; the local stack's users read their code from it (see the README).
"""

import fcntl
import json
import logging
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path

from domain.errors import PermanentError, TransientError
from domain.job import utcnow

log = logging.getLogger(__name__)

SUBJECT = "Your ConverSA verification code"


def verification_text(code: str) -> str:
    return (f"Your ConverSA verification code is {code}.\n\n"
            "It expires soon and allows a few attempts; if you did not ask for it, "
            "ignore this message.\n")


class OutboxNotifier:
    """Appends each message to ``path`` (JSON lines) and logs that it did, without the code."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        return self._path

    def send_verification_code(self, email: str, code: str) -> None:
        line = json.dumps({"to": email, "subject": SUBJECT, "code": code,
                           "body": verification_text(code), "at": utcnow().isoformat()})
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._path.open("a", encoding="utf-8") as outbox:
                fcntl.flock(outbox, fcntl.LOCK_EX)
                outbox.write(line + "\n")
        except OSError as exc:
            raise TransientError(f"cannot write the outbox {self._path}: {exc}") from exc
        log.info("verification code for %s written to %s", email, self._path)


class SmtpNotifier:
    """Sends the code by email through an SMTP server (STARTTLS or implicit TLS optional)."""

    def __init__(self, host: str, port: int, sender: str, *, username: str | None = None,
                 password: str | None = None, starttls: bool = True, use_tls: bool = False,
                 timeout_s: float = 10.0) -> None:
        self._host, self._port, self._sender = host, port, sender
        self._username, self._password = username, password
        self._starttls, self._use_tls, self._timeout = starttls, use_tls, timeout_s

    def __repr__(self) -> str:
        return f"SmtpNotifier({self._host}:{self._port})"

    def send_verification_code(self, email: str, code: str) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = email
        message["Subject"] = SUBJECT
        message.set_content(verification_text(code))
        context = ssl.create_default_context()
        try:
            client: smtplib.SMTP = (
                smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout, context=context)
                if self._use_tls else smtplib.SMTP(self._host, self._port, timeout=self._timeout))
            with client:
                if self._starttls and not self._use_tls:
                    client.starttls(context=context)
                if self._username:
                    client.login(self._username, self._password or "")
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"the mail server refused the address {email}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentError(f"SMTP at {self._host}:{self._port}: login refused") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"SMTP at {self._host}:{self._port}: {type(exc).__name__}"
                                 ) from exc
