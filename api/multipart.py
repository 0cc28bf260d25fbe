"""Reading a multipart upload from the request stream into a temporary file, block by block.

The size limit, the type checks and the text fields' limits run while the bytes arrive, so an
upload past a limit (or binary) is refused without being read whole, and memory never grows
with the file. A body is accepted only once its closing boundary arrived: python-multipart's
``finalize()`` checks nothing, so a body cut short (with a Content-Length that matches the cut)
would otherwise pass for a whole, shorter file.
"""

import json
import tempfile
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from api.schemas import SOURCE_MAX_CHARS, SOURCE_NAME_MAX_CHARS
from domain.errors import PermanentError, TransientError
from domain.metadata import MAX_METADATA_BYTES, InvalidMetadataError
from domain.uploads import SNIFF_BYTES, UploadTooLargeError, check_size
from pipeline.uploads import check_upload_start

FILE_FIELD = "file"
#: The text fields read, and the most characters each may have (UploadEvent's limits).
METADATA_MAX_CHARS = MAX_METADATA_BYTES
TEXT_FIELDS = {"source": SOURCE_MAX_CHARS, "source_name": SOURCE_NAME_MAX_CHARS,
               "metadata": METADATA_MAX_CHARS, "callback_url": 2048}
#: A character is at most this many bytes of UTF-8: the bound while a field is still arriving.
_UTF8_MAX_BYTES = 4


@dataclass
class ReceivedUpload:
    path: Path | None = None
    filename: str | None = None
    content_type: str | None = None
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)


class _Receiver:
    def __init__(self, limit: int, directory: Path | None) -> None:
        self.limit = limit
        self.directory = directory
        self.upload = ReceivedUpload()
        self._headers: dict[str, str] = {}
        self._header_field = b""
        self._header_value = b""
        self._name: str | None = None
        self._text = bytearray()
        self._file: IO[bytes] | None = None
        self._head = bytearray()
        self._checked = False
        self.file_ended = False
        self.ended = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").lower()] = (
            self._header_value.decode("latin-1"))
        self._header_field = self._header_value = b""

    def on_part_begin(self) -> None:
        self._headers = {}
        self._name = None
        self._text = bytearray()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", ""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == FILE_FIELD:
            if self._file is not None:
                raise PermanentError("send one file per request")
            filename = options.get(b"filename")
            self.upload.filename = (filename.decode("utf-8", "replace")
                                    if filename else "upload")
            self.upload.content_type = self._headers.get("content-type")
            self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in finish()
                prefix="api-upload-", dir=self.directory, delete=False)
            self.upload.path = Path(self._file.name)
        self._name = name

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        block = data[start:end]
        if self._name == FILE_FIELD and self._file is not None:
            self.upload.size += len(block)
            check_size(self.upload.size, self.limit)
            if not self._checked:
                self._head += block
                if len(self._head) >= SNIFF_BYTES:
                    self._check()
            self._file.write(block)
        elif self._name in TEXT_FIELDS:
            self._text += block
            if len(self._text) > _UTF8_MAX_BYTES * TEXT_FIELDS[self._name]:
                raise self._too_long(self._name)

    def on_part_end(self) -> None:
        if self._name == FILE_FIELD:
            if not self._checked:
                self._check()
            self.file_ended = True
        elif self._name in TEXT_FIELDS:
            try:
                value = self._text.decode("utf-8")
            except UnicodeDecodeError:
                raise PermanentError(f"the field {self._name!r} is not UTF-8") from None
            if len(value) > TEXT_FIELDS[self._name]:
                raise self._too_long(self._name)
            self.upload.fields[self._name] = value

    def on_end(self) -> None:
        self.ended = True

    @staticmethod
    def _too_long(name: str) -> PermanentError:
        return PermanentError(
            f"the field {name!r} is longer than {TEXT_FIELDS[name]} characters")

    def check_complete(self) -> None:
        """PermanentError unless the file part and the whole body ended (closing boundary)."""
        if self._file is not None and not self.file_ended:
            raise PermanentError("the upload is incomplete: the file part never ended (the "
                                 "body stopped before its closing boundary)")
        if not self.ended:
            raise PermanentError("the upload is incomplete: the body stopped before its "
                                 "closing boundary")

    def _check(self) -> None:
        self._checked = True
        check_upload_start(self.upload.content_type, bytes(self._head))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


async def receive(stream: AsyncIterator[bytes], content_type: str, limit: int,
                  directory: Path | None = None) -> ReceivedUpload:
    """The upload's file (in a temporary file the caller removes) and its text fields.

    PermanentError for a malformed or incomplete body (no closing boundary), a missing file
    or a text field past its limit; UploadTooLargeError past
    ``limit``; UnsupportedTypeError for a type the pipeline cannot read. On any error the
    temporary file is already removed.
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise PermanentError("a multipart body needs a boundary")
    receiver = _Receiver(limit, directory)
    callbacks = {name: getattr(receiver, name) for name in (
        "on_header_field", "on_header_value", "on_header_end", "on_part_begin",
        "on_headers_finished", "on_part_data", "on_part_end", "on_end")}
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
        receiver.check_complete()
        if receiver.upload.path is None:
            raise PermanentError(f"the multipart field {FILE_FIELD!r} (the file) is missing")
        receiver.close()
    except OSError as exc:  # the data folder's disk is full, say: try again later
        with suppress(OSError):
            receiver.close()
        _remove(receiver.upload.path)
        raise TransientError(f"cannot keep the upload for now: {exc.strerror or exc}") from None
    except MultipartParseError:
        receiver.close()
        _remove(receiver.upload.path)
        raise PermanentError("the multipart body is malformed") from None
    except BaseException:
        receiver.close()
        _remove(receiver.upload.path)
        raise
    return receiver.upload


def metadata_field(text: str | None) -> dict[str, object] | None:
    """The ``metadata`` field's JSON object (checked further by ``domain.metadata``)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidMetadataError("the field 'metadata' is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidMetadataError("the field 'metadata' must be a JSON object")
    return value


def _remove(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


__all__ = ["ReceivedUpload", "UploadTooLargeError", "receive"]
