"""The zip-bomb guard of every zip-based format (DOCX, PPTX, XLSX, EPUB, ODT)."""

import io
import zipfile

from adapters.parsing.textblocks import Limits
from domain.errors import PermanentError


def check_zip(data: bytes, label: str, limits: Limits) -> None:
    """Refuse a zip that would inflate past the limits, before anything is inflated: its
    declared sizes in total and each large part's compression ratio. zipfile itself never
    inflates a part past its declared size."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise PermanentError(f"corrupt {label}: {exc}") from None
    total = sum(info.file_size for info in infos)
    if total > limits.max_unzipped_bytes:
        raise PermanentError(
            f"{label} would inflate to {total} bytes, the limit is {limits.max_unzipped_bytes} "
            "(a zip bomb?)")
    for info in infos:
        if info.file_size > 1024 * 1024 and info.file_size > limits.max_zip_ratio * max(
                info.compress_size, 1):
            raise PermanentError(
                f"{label} part {info.filename[:80]!r} is compressed "
                f"{info.file_size // max(info.compress_size, 1)}:1, over "
                f"{limits.max_zip_ratio}:1 (a zip bomb?)")
