"""Rules for accepting an upload before anything is stored: size, emptiness, type (no I/O)."""

from domain.errors import PermanentError

#: Declared types we may be able to read; the bytes are sniffed as well (no NUL bytes).
ACCEPTED_MAIN_TYPES = ("text/",)
ACCEPTED_TYPES = frozenset({"", "application/octet-stream", "application/markdown",
                            "application/x-markdown"})
SNIFF_BYTES = 8192


class UploadTooLargeError(PermanentError):
    """The upload is past the size limit."""


class EmptyUploadError(PermanentError):
    """The upload has no bytes."""


class UnsupportedTypeError(PermanentError):
    """The upload is not a kind of file the pipeline can read (plain text or Markdown)."""


def check_size(size: int, limit: int) -> None:
    if size > limit:
        raise UploadTooLargeError(f"file too large: over the limit of {limit} bytes")


def check_not_empty(size: int) -> None:
    if size == 0:
        raise EmptyUploadError("empty file: nothing to ingest")


def check_type(declared: str | None, head: bytes) -> None:
    """Refuse a declared type we cannot read, or bytes that are not text."""
    main = (declared or "").split(";", 1)[0].strip().lower()
    if not (main in ACCEPTED_TYPES or main.startswith(ACCEPTED_MAIN_TYPES)):
        raise UnsupportedTypeError(
            f"unsupported content type {main!r}: plain text and Markdown (UTF-8) only")
    if b"\x00" in head[:SNIFF_BYTES]:
        raise UnsupportedTypeError(
            "unsupported content: binary data; plain text and Markdown (UTF-8) only")
