"""Scans made in the test: known sentences drawn by Pillow into an image, a multi-page TIFF or
an image-only PDF (pages that are pictures, with no text layer)."""

import io

from PIL import Image, ImageDraw, ImageFont


def draw_page(lines: list[str]) -> Image.Image:
    """A white page with ``lines`` in black, large enough for OCR at 150 dpi."""
    font = ImageFont.load_default(size=36)
    page = Image.new("L", (1800, 120 + 60 * len(lines)), 255)
    pen = ImageDraw.Draw(page)
    for number, line in enumerate(lines):
        pen.text((60, 60 + 60 * number), line, fill=0, font=font)
    return page


def make_scan(pages: list[list[str]], image_format: str) -> bytes:
    """``pages`` drawn and saved as PNG, JPEG (first page only), TIFF or PDF (a page each)."""
    images = [draw_page(lines) for lines in pages]
    out = io.BytesIO()
    if image_format in ("TIFF", "PDF"):
        extra = {"resolution": 150.0} if image_format == "PDF" else {}
        images[0].save(out, image_format, save_all=True, append_images=images[1:], **extra)
    else:
        images[0].save(out, image_format)
    return out.getvalue()
