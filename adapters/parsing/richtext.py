"""RTF (``striprtf``): the text of the document, control words and groups dropped."""

from adapters.parsing.textblocks import Limits, TextBuilder
from domain.errors import PermanentError
from domain.parsing import ParsedDocument

RTF = "application/rtf"


def is_rtf(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf\t\n\r ").startswith(b"{\\rtf")


def parse_rtf(data: bytes, limits: Limits) -> ParsedDocument:
    from striprtf.striprtf import rtf_to_text

    # RTF is 7-bit: other characters come as \'hh escapes in the code page the file names
    # (\ansicpg), which striprtf applies; latin-1 maps each byte to one character.
    try:
        text = str(rtf_to_text(data.decode("latin-1"), errors="replace"))  # type: ignore[no-untyped-call]
    except (ValueError, LookupError, RecursionError) as exc:
        raise PermanentError(f"corrupt RTF: {type(exc).__name__}: {exc}") from None
    builder = TextBuilder(limits.max_text_chars)
    for paragraph in text.split("\n\n"):
        builder.block(paragraph)
    return builder.build(RTF)
