"""Rules for accepting an upload before anything is stored: size, emptiness, type (no I/O)."""

from domain.errors import PermanentError

#: Binary formats the parsers read (PDF; DOCX and other zip containers are told apart by the
#: parser, which refuses the rest with a reason; PNG, JPEG and TIFF images for OCR). Text is
#: told by having no NUL bytes.
BINARY_SIGNATURES = (b"%PDF-", b"PK\x03\x04", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00",
                     b"MM\x00*")
TEXT_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
SNIFF_BYTES = 8192


class UploadTooLargeError(PermanentError):
    """The upload is past the size limit."""


class EmptyUploadError(PermanentError):
    """The upload has no bytes."""


class UnsupportedTypeError(PermanentError):
    """The upload is not a kind of file the pipeline can read (plain text or Markdown)."""


#: The one wording of the refusal of no bytes at all.
EMPTY_MESSAGE = "empty file: nothing to ingest"


def check_size(size: int | None, limit: int | None, *, name: str | None = None,
               complete: bool = False) -> None:
    """The one size rule of an upload, wherever its size is known (declared, read so far, or
    whole): past ``limit`` bytes it is too large; once the whole size is known (``complete``)
    no bytes at all is empty. An unknown size (None) passes (the bytes are counted when they
    come); a ``limit`` of None checks emptiness only. ``name`` says which file, where a
    refusal would not tell otherwise."""
    if size is None:
        return
    if limit is not None and size > limit:
        which = f"{name} is " if name else ""
        raise UploadTooLargeError(f"file too large: {which}over the limit of {limit} bytes")
    if complete and size == 0:
        raise EmptyUploadError(EMPTY_MESSAGE)


def check_type(declared: str | None, head: bytes) -> None:
    """Refuse bytes that are neither text nor a binary format the parsers read. The type comes
    from the bytes (as in the parsers), never from the declared type or the file name."""
    head = head[:SNIFF_BYTES]
    if head.lstrip(b"\x00\t\n\r\x0c ").startswith(BINARY_SIGNATURES[0]):
        return
    if head.startswith(BINARY_SIGNATURES[1:] + TEXT_BOMS) or b"\x00" not in head:
        return
    even, odd = head[0::2], head[1::2]
    if len(head) >= 8 and (even.count(0) > 0.9 * len(even) or odd.count(0) > 0.9 * len(odd)):
        return  # UTF-16 text without a BOM
    kind = (declared or "").split(";", 1)[0].strip() or "binary data"
    raise UnsupportedTypeError(f"unsupported content: {kind} is not a type the pipeline reads "
                               "(text, Markdown, HTML, CSV, JSON, PDF, office documents, e-mail, "
                               "PNG, JPEG or TIFF images)")
