"""OCR with Tesseract: images (PNG, JPEG, TIFF, a page per TIFF frame) and PDF pages that have
no text layer (rendered by ``pypdfium2``). Tesseract is an optional part run as a subprocess
(no Python binding holds its path in global state): without it, or without the language asked
for, a job fails with a reason that names the Debian package to install.

Bounded per document: at most ``max_pages`` pages, ``max_seconds`` of Tesseract time in all
(each page gets what is left), and ``max_pixels`` per page (a PDF page is rendered at a lower
resolution to fit; an image over it is refused before it is decoded)."""

import io
import os
import re
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from adapters.parsing.textblocks import TextBuilder, clean
from domain.errors import PermanentError
from domain.parsing import ParsedDocument

if TYPE_CHECKING:
    from PIL.Image import Image

PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"
IMAGES = (PNG, JPEG, TIFF)
INSTALL = "apt-get install tesseract-ocr tesseract-ocr-eng"
_MISSING_LANGUAGE = re.compile(r"Failed loading language '([^']+)'")


@dataclass(frozen=True)
class TesseractOcr:
    """Reads text from page images with the ``tesseract`` binary at ``command`` (a name on
    PATH or a path) in ``languages`` (Tesseract's codes joined by ``+``, e.g. ``eng+deu``)."""

    command: str = "tesseract"
    languages: str = "eng"
    dpi: int = 200
    max_pages: int = 50
    max_seconds: float = 180.0
    max_pixels: int = 40_000_000

    def read_image(self, data: bytes, content_type: str) -> ParsedDocument:
        """The text of an image, a page per frame (a TIFF may hold several)."""
        from PIL import Image, UnidentifiedImageError

        try:
            with warnings.catch_warnings():  # the size is checked below, before decoding
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data))
            frames = getattr(image, "n_frames", 1)
            if frames > self.max_pages:
                raise PermanentError(
                    f"the image holds {frames} pages, over the OCR limit of {self.max_pages} "
                    "(CONVERSA_OCR__MAX_PAGES)")
            width, height = image.size
            if width * height > self.max_pixels:
                raise PermanentError(
                    f"the image is {width}x{height} pixels, over the OCR limit of "
                    f"{self.max_pixels} (CONVERSA_OCR__MAX_PIXELS)")
            pages = list(self._recognize(_frames(image, frames)))
        except PermanentError:
            raise
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError,
                Image.DecompressionBombError) as exc:
            raise PermanentError(f"corrupt image ({content_type}): {exc}") from None
        return _document(content_type, pages)

    def read_pdf_pages(self, data: bytes, pages: list[int]) -> dict[int, str]:
        """The OCR text of the PDF pages numbered ``pages`` (0-based), rendered one by one."""
        import pypdfium2

        if len(pages) > self.max_pages:
            raise PermanentError(
                f"{len(pages)} PDF pages have no text layer, over the OCR limit of "
                f"{self.max_pages} pages (CONVERSA_OCR__MAX_PAGES)")
        try:
            pdf = pypdfium2.PdfDocument(data)
        except pypdfium2.PdfiumError as exc:
            raise PermanentError(f"corrupt PDF: the renderer cannot open it ({exc})") from None
        try:
            texts = self._recognize(self._render(pdf, pages))
            return dict(zip(pages, texts, strict=True))
        finally:
            pdf.close()

    def _render(self, pdf: "object", pages: list[int]) -> Iterator["Image"]:
        import pypdfium2

        assert isinstance(pdf, pypdfium2.PdfDocument)
        for number in pages:
            page = pdf[number]
            try:
                width, height = page.get_size()  # in points, 72 to the inch
                scale = self.dpi / 72
                if width * height * scale * scale > self.max_pixels:
                    scale = (self.max_pixels / max(width * height, 1.0)) ** 0.5
                yield page.render(scale=scale, grayscale=True).to_pil()
            except pypdfium2.PdfiumError as exc:
                raise PermanentError(
                    f"corrupt PDF: page {number + 1} cannot be rendered ({exc})") from None
            finally:
                page.close()

    def check_installed(self) -> None:
        """PermanentError naming what to install when the binary or a language's data is
        not there (``tesseract --list-langs``; a missing language among several would
        otherwise be skipped with a warning)."""
        if shutil.which(self.command) is None:
            raise PermanentError(
                f"OCR needs Tesseract, and {self.command!r} is not found: install it "
                f"({INSTALL}, or your system's tesseract package) or point "
                "CONVERSA_OCR__TESSERACT_CMD at it")
        try:
            listed = subprocess.run([self.command, "--list-langs"], capture_output=True,
                                    timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PermanentError(
                f"OCR cannot run Tesseract ({self.command!r}): {exc}; install it ({INSTALL}) "
                "or point CONVERSA_OCR__TESSERACT_CMD at it") from None
        installed = set(listed.stdout.decode("utf-8", errors="replace").split()[1:])
        for code in self.languages.split("+"):
            if code not in installed:
                raise PermanentError(
                    f"Tesseract has no {code!r} language data: install Debian's "
                    f"tesseract-ocr-{code.lower().replace('_', '-')} (or set "
                    "CONVERSA_OCR__LANGUAGES)")

    def _recognize(self, images: Iterator["Image"]) -> Iterator[str]:
        self.check_installed()
        deadline = time.monotonic() + self.max_seconds
        for image in images:
            png = io.BytesIO()
            image.save(png, "PNG")
            yield self._tesseract(png.getvalue(), deadline)

    def _tesseract(self, png: bytes, deadline: float) -> str:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PermanentError(self._too_slow())
        # One thread per page: the workers already run a process per core.
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        try:
            done = subprocess.run(
                [self.command, "stdin", "stdout", "-l", self.languages, "--psm", "3"],
                input=png, capture_output=True, timeout=left, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise PermanentError(self._too_slow()) from None
        except OSError as exc:
            raise PermanentError(
                f"OCR cannot run Tesseract ({self.command!r}: {exc.strerror}): install it "
                f"({INSTALL}) or point CONVERSA_OCR__TESSERACT_CMD at it") from None
        errors = done.stderr.decode("utf-8", errors="replace")
        if done.returncode != 0:
            missing = _MISSING_LANGUAGE.search(errors)
            if missing:
                code = missing.group(1)
                raise PermanentError(
                    f"Tesseract has no {code!r} language data: install Debian's "
                    f"tesseract-ocr-{code} (or set CONVERSA_OCR__LANGUAGES)")
            raise PermanentError(
                f"Tesseract failed (exit {done.returncode}): {errors.strip()[-300:]}")
        return done.stdout.decode("utf-8", errors="replace")

    def _too_slow(self) -> str:
        return (f"OCR took over {self.max_seconds:g} s for this document "
                "(CONVERSA_OCR__MAX_SECONDS, at most 3/4 of CONVERSA_WORKER__SOFT_TIME_LIMIT)")


def _frames(image: "Image", frames: int) -> Iterator["Image"]:
    for number in range(frames):
        image.seek(number)
        yield image.convert("L")


def _document(content_type: str, pages: list[str]) -> ParsedDocument:
    builder = TextBuilder(sum(len(page) for page in pages) + 1)
    for page in pages:
        builder.page()
        builder.block(clean(page))
    return builder.build(content_type)
