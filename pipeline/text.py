"""Turning stored bytes into text: plain text and Markdown in UTF-8 (more formats later)."""

from domain.errors import PermanentError

_MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown")
_SNIFF_BYTES = 8192


def detect_text_type(data: bytes, source_name: str) -> str:
    """The content type of text we can read; PermanentError for anything else."""
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise PermanentError("unsupported content type: application/octet-stream")
    if source_name.lower().endswith(_MARKDOWN_SUFFIXES):
        return "text/markdown"
    return "text/plain"


def decode_text(data: bytes) -> str:
    """UTF-8 text without its BOM; a clear PermanentError where it is not UTF-8 or empty."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PermanentError(f"invalid UTF-8 text at byte {exc.start}") from None
    if not text.strip():
        raise PermanentError("no text to index: the document is empty or whitespace")
    return text
