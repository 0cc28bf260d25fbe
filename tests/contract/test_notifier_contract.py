"""The Notifier contract, run against every adapter of the port: the memory fake, the outbox
file and SMTP (against a small SMTP server on loopback)."""

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapters.email.notifiers import OutboxNotifier, SmtpNotifier
from adapters.memory.users import MemoryNotifier
from adapters.ports import Notifier
from domain.errors import TransientError
from localstack.servers import free_port
from tests.support.fake_smtp import smtp_server

#: Reads the codes an address was sent, oldest first.
Mailbox = Callable[[str], list[str]]


@pytest.fixture(params=["memory", "outbox", "smtp"])
def notifier(request: pytest.FixtureRequest, tmp_path: Path
             ) -> Iterator[tuple[Notifier, Mailbox]]:
    if request.param == "memory":
        memory = MemoryNotifier()
        yield memory, lambda email: [code for to, code in memory.sent if to == email]
    elif request.param == "outbox":
        path = tmp_path / "mail" / "outbox.jsonl"

        def outbox(email: str) -> list[str]:
            lines = [json.loads(line) for line in path.read_text().splitlines()]
            return [line["code"] for line in lines if line["to"] == email]

        yield OutboxNotifier(path), outbox
    else:
        with smtp_server() as smtp:
            def received(email: str) -> list[str]:
                return [re.search(rb"code is (\w+)", body)[1].decode()  # type: ignore[index]
                        for body in smtp.received if f"To: {email}".encode() in body]

            yield SmtpNotifier("127.0.0.1", smtp.port, "ConverSA <no-reply@example.com>",
                               starttls=False), received


def test_implements_the_port(notifier: tuple[Notifier, Mailbox]) -> None:
    assert isinstance(notifier[0], Notifier)


def test_the_code_reaches_the_address_and_only_that_one(
        notifier: tuple[Notifier, Mailbox]) -> None:
    sender, mailbox = notifier
    sender.send_verification_code("ann@example.com", "12345678")
    sender.send_verification_code("bob@example.com", "87654321")
    assert mailbox("ann@example.com") == ["12345678"]
    assert mailbox("bob@example.com") == ["87654321"]


def test_every_code_sent_arrives_in_order(notifier: tuple[Notifier, Mailbox]) -> None:
    sender, mailbox = notifier
    for code in ("11111111", "22222222", "33333333"):
        sender.send_verification_code("ann@example.com", code)
    assert mailbox("ann@example.com") == ["11111111", "22222222", "33333333"]


@pytest.mark.parametrize("kind", ["outbox", "smtp"])
def test_a_message_that_cannot_be_handed_over_is_transient(kind: str, tmp_path: Path) -> None:
    if kind == "outbox":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        failing: Notifier = OutboxNotifier(blocker / "outbox.jsonl")
    else:
        failing = SmtpNotifier("127.0.0.1", free_port(), "x@example.com", starttls=False,
                               timeout_s=2)
    with pytest.raises(TransientError):
        failing.send_verification_code("ann@example.com", "12345678")
