"""E-mail (.eml, the standard ``email`` package): the headers that say who, to whom, when
and about what; the body (plain text, else HTML read as HTML is); then each attachment
parsed in place, as a section of the message titled by its file name. An attachment of a
type we do not read (an image, say) is named in the text and skipped; one that is hostile
(a zip bomb, too deep) fails the whole message with its reason.

A message's depth counts both the MIME levels of each message and the messages enclosed in
messages (``message/rfc822``, also when it is, against RFC 2046, base64 or quoted-printable
encoded); over ``max_part_depth`` levels in all, the message is refused."""

import binascii
import email
import email.policy
import quopri
import re
from collections.abc import Callable
from email.message import EmailMessage, Message, MIMEPart

from adapters.parsing.html_text import parse_html
from adapters.parsing.textblocks import Limits, NestingError, TextBuilder, corrupt_as
from domain.errors import PermanentError
from domain.parsing import ParsedDocument

EML = "message/rfc822"
_HEADERS = ("From", "To", "Cc", "Date", "Subject")
_HEADER_LINE = re.compile(rb"^([A-Za-z][A-Za-z0-9-]{0,60}):[ \t]?(.*)$")
_KNOWN = frozenset({b"from", b"to", b"cc", b"subject", b"date", b"message-id",
                    b"mime-version", b"received", b"return-path", b"reply-to", b"sender",
                    b"delivered-to", b"content-type"})
# an attachment we cannot read is named and skipped, never fatal: a scan or an image that OCR
# cannot read (off, Tesseract missing, over its bounds, a broken picture) too
_SKIPPED = ("unsupported content type", "no text to index", "empty file", "corrupt image",
            "OCR", "Tesseract")

ParsePart = Callable[[bytes, int], ParsedDocument]


def is_email(head: bytes) -> bool:
    """A header block first (``Name: value`` lines, folded lines allowed) naming at least
    two of the usual mail headers, From or Subject among them."""
    seen: set[bytes] = set()
    for number, line in enumerate(head.split(b"\n")):
        line = line.rstrip(b"\r")
        if not line:
            break
        if line[:1] in (b" ", b"\t") and number:
            continue
        match = _HEADER_LINE.match(line)
        if match is None:
            return False
        seen.add(match.group(1).lower())
    else:
        return False
    return len(seen & _KNOWN) >= 2 and bool(seen & {b"from", b"subject"})


#: What the e-mail library raises on a damaged message.
_CORRUPT = (ValueError, LookupError, TypeError, AttributeError, RecursionError)


def parse_email(data: bytes, limits: Limits, parse_part: ParsePart, depth: int) -> ParsedDocument:
    with corrupt_as("e-mail", _CORRUPT):
        message = email.message_from_bytes(data, policy=email.policy.default)
        _check_depth(message, depth, limits.max_part_depth)
        assert isinstance(message, EmailMessage)
        builder = TextBuilder(limits.max_text_chars)
        headers = [f"{name}: {message[name]}" for name in _HEADERS if message[name]]
        subject = str(message["Subject"] or "")
        if subject:
            builder.section(subject)
        builder.block("\n".join(headers))
        plain = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        if plain is not None and (_text_of(plain).strip() or html is None):
            builder.block(_text_of(plain))
        elif html is not None:
            builder.document(parse_html(_text_of(html)))
        attachments = list(message.iter_attachments())
        if message.get_content_type() == "message/rfc822":
            attachments = [message]  # a message that only encloses another one
        for number, part in enumerate(attachments, start=1):
            name = part.get_filename() or f"attachment {number}"
            payload = _payload_bytes(part)
            try:
                parsed = parse_part(payload, depth + 1)
            except NestingError:
                raise
            except PermanentError as exc:
                if not payload or any(reason in str(exc) for reason in _SKIPPED):
                    builder.block(f"Attachment {name}: not read ({exc})")
                    continue
                raise PermanentError(f"attachment {name[:80]!r}: {exc}") from None
            builder.section(f"Attachment: {name}")
            builder.block(f"Attachment: {name}")
            builder.document(parsed)
    return builder.build(EML)


def _check_depth(message: Message, depth: int, max_depth: int) -> None:
    """Refuse parts nested deeper than the limit, counted with an explicit stack from
    ``depth``, the level this message is enclosed at."""
    stack: list[tuple[Message, int]] = [(message, depth)]
    parts = 0
    while stack:
        part, depth = stack.pop()
        parts += 1
        if depth > max_depth:
            raise NestingError(f"e-mail parts nested over {max_depth} levels deep")
        if parts > 10_000:
            raise PermanentError("e-mail has over 10000 parts")
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload if isinstance(child, Message))


def _text_of(part: MIMEPart) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):
        raw = part.get_payload(decode=True)
        return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else ""


def _payload_bytes(part: MIMEPart) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            enclosed = bytes(inner[0].as_bytes())
            encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            if encoding == "base64":
                return binascii.a2b_base64(enclosed)
            if encoding == "quoted-printable":
                return quopri.decodestring(enclosed)
            return enclosed
    raw = part.get_payload(decode=True)
    return raw if isinstance(raw, bytes) else b""
