"""Benchmark: peak memory of a worker process parsing the largest PDF the settings allow.

Builds a PDF just under ``CONVERSA_MAX_UPLOAD_BYTES`` (default 100 MiB) with the most pages
the parser accepts (``CONVERSA_PARSING__MAX_PDF_PAGES``, 5,000): each page a paragraph of text
and an uncompressed image of random bytes (what a scanned-and-OCRed report looks like), then
parses it in a fresh process as the extract stage does (the bytes in memory, pypdf over
them) and prints that process's peak RSS next to its RSS before parsing.

    .venv/bin/python bench/parse_memory.py [--megabytes 100] [--pages 5000]
"""

import argparse
import io
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEXT = ("The inspection of the northern breakwater found the concrete armour units sound, "
        "with minor spalling on the seaward face near the lighthouse. ")


def build_pdf(target_bytes: int, pages: int) -> bytes:
    image_bytes = max(1024, (target_bytes - pages * 2600) // pages)
    side = int((image_bytes / 3) ** 0.5)
    rng = random.Random(1)
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets: list[int] = []

    def obj(body: bytes) -> None:
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % len(offsets) + body + b"\nendobj\n")

    kids = " ".join(f"{4 + 3 * n} 0 R" for n in range(pages))
    obj(b"<< /Type /Catalog /Pages 2 0 R >>")
    obj(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    obj(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for n in range(pages):
        page_id = 4 + 3 * n
        obj(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Contents {page_id + 1} 0 R "
            f"/Resources << /Font << /F1 3 0 R >> /XObject << /Im1 {page_id + 2} 0 R >> >> >>"
            .encode())
        text = f"Page {n + 1}. {TEXT * 6}"
        lines = [text[i:i + 90] for i in range(0, len(text), 90)]
        ops = "BT /F1 10 Tf 12 TL 40 800 Td " + " ".join(f"({line}) Tj T*" for line in lines)
        stream = (ops + " ET q 200 0 0 200 40 300 cm /Im1 Do Q").encode()
        obj(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        pixels = rng.randbytes(side * side * 3)
        obj(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
            b"/BitsPerComponent 8 /Length %d >>\nstream\n" % (side, side, len(pixels))
            + pixels + b"\nendstream")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(offsets) + 1, xref))
    return out.getvalue()


def child(path: str) -> None:
    from adapters.factory import document_parser
    from pipeline.settings import load_settings

    parser = document_parser(load_settings())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data = Path(path).read_bytes()
    started = time.perf_counter()
    parsed = parser.parse(data)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"parsed                    {len(parsed.page_starts)} pages, {len(parsed.text)} "
          f"characters in {seconds:.1f} s")
    print(f"RSS before parsing        {before / 1024:8.0f} MiB")
    print(f"peak RSS while parsing    {peak / 1024:8.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=100)
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    with tempfile.TemporaryDirectory(prefix="conversa-bench-") as tmp:
        pdf = Path(tmp) / "largest.pdf"
        pdf.write_bytes(build_pdf(int(args.megabytes * 1024 * 1024) - 4096, args.pages))
        print(f"PDF                       {pdf.stat().st_size / 1024 / 1024:.1f} MiB, "
              f"{args.pages} pages")
        subprocess.run([sys.executable, __file__, "--child", str(pdf)], check=True)


if __name__ == "__main__":
    main()
