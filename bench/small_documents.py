"""Benchmark: many small documents (one or two paragraphs each) through the real CLI.

Writes ``--documents`` text files (default 2,000) of one or two paragraphs taken from the
docstrings of the standard library's own sources (read with ``ast``, nothing imported), then
runs ``bench/corpus.py`` on that folder: the end-to-end rate (tokens/s and jobs/s) beside the
embedder alone on the same chunks in as many processes as the pool, in one run.

    .venv/bin/python bench/small_documents.py [--documents 2000] [--concurrency 2]
"""

import argparse
import ast
import random
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIN_PARAGRAPH = 200


def paragraphs(wanted: int) -> list[str]:
    """Paragraphs of at least MIN_PARAGRAPH characters from the stdlib's docstrings."""
    found: list[str] = []
    for source in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            tree = ast.parse(source.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
                continue
            doc = ast.get_docstring(node) or ""
            for block in doc.split("\n\n"):
                text = " ".join(block.split())
                if len(text) >= MIN_PARAGRAPH:
                    found.append(text)
        if len(found) >= wanted:
            break
    return found


def write_corpus(folder: Path, documents: int, seed: int = 7) -> int:
    """``documents`` files of one or two paragraphs each; returns the characters written."""
    rng = random.Random(seed)
    pool = paragraphs(documents * 2)
    if not pool:
        raise SystemExit("no docstring paragraphs found in the standard library")
    written = 0
    for number in range(documents):
        count = rng.choice((1, 2))
        text = "\n\n".join(pool[(number * 2 + k) % len(pool)] for k in range(count))
        text += f"\n\n(document {number})\n"  # every document distinct, so none is deduplicated
        (folder / f"doc{number:05d}.txt").write_text(text, encoding="utf-8")
        written += len(text)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conversa-small-") as tmp:
        folder = Path(tmp)
        chars = write_corpus(folder, args.documents)
        print(f"small_documents: {args.documents} documents, {chars / args.documents:.0f} "
              f"characters each on average", flush=True)
        command = [sys.executable, str(ROOT / "bench" / "corpus.py"), str(folder)]
        if args.concurrency:
            command += ["--concurrency", str(args.concurrency)]
        raise SystemExit(subprocess.run(command, check=False).returncode)


if __name__ == "__main__":
    main()
