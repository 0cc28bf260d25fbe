"""An ONNX graph of the all-MiniLM-L6-v2 encoder around given fp32 weights, with
onnxruntime's fused CPU operators (EmbedLayerNormalization, Attention, SkipLayerNormalization,
BiasGelu).

The weights come from the int8 export (``adapters.onnx.export_weights``), or from the
model's own safetensors file (``bench/embed_alone.py`` does that to compare). The graph is the
one onnxruntime's transformer optimizer makes of a BERT export,
written out here layer by layer, so neither torch nor an exporter is needed at run time and
nothing is downloaded: the model is built in memory when a process first embeds (about a
second). The weights stay numpy arrays handed to onnxruntime beside a graph that only names
them, so the 90 MB are never copied into a protobuf. The fused attention reads each
sequence's length from the mask, so a batch padded on the right computes the same vectors
as its texts one by one.

Each kind of projection can also compute in 8-bit integers (``Precision``), its weights
quantized here from the fp32 ones when the graph is built: ``int8`` per output channel, the
activations quantized per tensor as each product runs (onnxruntime's QAttention and
DynamicQuantizeMatMul, the ops ``quantize_dynamic`` writes); ``int8-block`` in blocks of
``BLOCK`` along the input with a scale and zero point each, activations quantized per block too
(MatMulNBits with ``accuracy_level`` 4), which keeps the outlier-heavy input of the feed-forward
projections close to fp32. On a CPU with VNNI int8 products run several times faster than fp32
ones (``bench/embedders.py``).

Inputs: ``input_ids`` and ``attention_mask`` (int32, batch x length, padded on the right);
output: ``last_hidden_state`` (float32, batch x length x 384).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from domain.errors import ConfigurationError

HIDDEN = 384
HEADS = 12
LAYERS = 6
INTERMEDIATE = 1536
EPSILON = 1e-12
_MS = "com.microsoft"
#: onnxruntime's contrib operators are version 1 of the com.microsoft domain.
_OPSETS = (("", 17), (_MS, 1))

#: Rows of a weight matrix that share a scale and a zero point in ``int8-block`` (blocks of
#: 32 and 64 measured ~0.0005 closer to fp32 and ~5% slower).
BLOCK = 128

Weights = Mapping[str, npt.NDArray[np.float32]]
Compute = Literal["fp32", "int8", "int8-block"]


@dataclass(frozen=True)
class Precision:
    """How each kind of projection computes: the query/key/value one inside attention
    (``fp32`` or ``int8``), attention's output, the feed-forward up and down projections."""

    qkv: Literal["fp32", "int8"] = "fp32"
    projection: Compute = "fp32"
    up: Compute = "fp32"
    down: Compute = "fp32"
    #: ``int8`` weights in 7 bits (-63..63), so that AVX2's int16 pair sums cannot saturate
    #: on a CPU without VNNI (onnxruntime's ``reduce_range``).
    reduce_range: bool = False


FP32 = Precision()


def _weight(weights: Weights, name: str, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    try:
        value = np.asarray(weights[name], dtype=np.float32)
    except KeyError:
        raise ConfigurationError(f"the MiniLM weights lack {name}") from None
    if value.shape != shape:
        raise ConfigurationError(f"the MiniLM weight {name} has shape {value.shape}, "
                                 f"expected {shape}")
    return value


@dataclass(frozen=True)
class EncoderModel:
    """The serialized graph (a few kilobytes) and the initializers it names, to be given to
    ``SessionOptions.add_external_initializers``."""

    graph: bytes
    initializers: dict[str, npt.NDArray[Any]]


def per_channel_int8(matrix: npt.NDArray[np.float32], *, reduce_range: bool = False
                     ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """A (in x out) matrix as symmetric int8 with one scale per output column (in 7 bits
    with ``reduce_range``)."""
    top = 63.0 if reduce_range else 127.0
    scale = np.maximum(np.abs(matrix).max(axis=0), 1e-12) / top
    quantised = np.clip(np.rint(matrix / scale), -top, top).astype(np.int8)
    return quantised, scale.astype(np.float32)


def blockwise_uint8(matrix: npt.NDArray[np.float32]
                    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32],
                               npt.NDArray[np.uint8]]:
    """A (in x out) matrix in MatMulNBits' 8-bit layout: per output column, blocks of BLOCK
    inputs, each with its scale and zero point (asymmetric, the range widened to hold 0)."""
    rows, cols = matrix.shape
    if rows % BLOCK:
        raise ConfigurationError(f"a {rows}-row matrix does not split into blocks of {BLOCK}")
    blocks = matrix.T.reshape(cols, rows // BLOCK, BLOCK)
    low = np.minimum(blocks.min(axis=2), 0.0)
    high = np.maximum(blocks.max(axis=2), 0.0)
    scale = np.maximum(high - low, 1e-12) / 255.0
    zero = np.clip(np.rint(-low / scale), 0, 255)
    quantised = np.clip(np.rint(blocks / scale[..., None]) + zero[..., None], 0, 255)
    return (quantised.astype(np.uint8), scale.astype(np.float32), zero.astype(np.uint8))


def build_model(weights: Weights, precision: Precision = FP32) -> EncoderModel:
    """The encoder's ONNX graph for these weights (Hugging Face BertModel names, torch
    layout: a Linear's weight is out x in), each projection computing as ``precision``
    says."""
    try:
        from onnx import TensorProto, helper
    except ImportError as exc:
        raise ConfigurationError(
            "onnx is needed to build the local embedding model: install the local extra "
            "(pip install 'conversa-ingest[local]')") from exc

    arrays: dict[str, npt.NDArray[Any]] = {}
    nodes: list[Any] = []

    def const(name: str, value: npt.NDArray[Any]) -> str:
        arrays[name] = np.ascontiguousarray(value)
        return name

    def matmul(source: str, weight_t: npt.NDArray[np.float32], compute: Compute, name: str,
               output: str) -> None:
        """``output = source @ weight_t`` computed as ``compute`` says."""
        if compute == "fp32":
            nodes.append(helper.make_node("MatMul", [source, const(name, weight_t)], [output]))
        elif compute == "int8":
            quantised, scale = per_channel_int8(weight_t, reduce_range=precision.reduce_range)
            nodes.append(helper.make_node(
                "DynamicQuantizeMatMul",
                [source, const(f"{name}.q8", quantised), const(f"{name}.scale", scale),
                 const(f"{name}.zero", np.zeros(scale.shape, dtype=np.int8))],
                [output], domain=_MS))
        else:
            packed, scale, zero = blockwise_uint8(weight_t)
            rows, cols = weight_t.shape
            nodes.append(helper.make_node(
                "MatMulNBits",
                [source, const(f"{name}.q8b", packed), const(f"{name}.scale", scale),
                 const(f"{name}.zero", zero)],
                [output], domain=_MS, K=rows, N=cols, bits=8, block_size=BLOCK,
                accuracy_level=4))

    def linear(prefix: str, rows: int, cols: int, source: str, compute: Compute,
               output: str) -> str:
        """A Linear layer without its bias (``output = source @ weight.T``); returns the
        bias's initializer name, for the fused op that adds it."""
        weight = _weight(weights, f"{prefix}.weight", (rows, cols))
        bias = _weight(weights, f"{prefix}.bias", (rows,))
        matmul(source, np.ascontiguousarray(weight.T), compute, f"{prefix}.weight_t", output)
        return const(f"{prefix}.bias", bias)

    def norm(prefix: str) -> tuple[str, str]:
        return (const(f"{prefix}.weight", _weight(weights, f"{prefix}.weight", (HIDDEN,))),
                const(f"{prefix}.bias", _weight(weights, f"{prefix}.bias", (HIDDEN,))))

    word = _weight(weights, "embeddings.word_embeddings.weight", (30522, HIDDEN))
    position = _weight(weights, "embeddings.position_embeddings.weight", (512, HIDDEN))
    token_type = _weight(weights, "embeddings.token_type_embeddings.weight", (2, HIDDEN))
    # Every token is of type 0: its embedding joins the position embeddings, exactly.
    gamma, beta = norm("embeddings.LayerNorm")
    nodes.append(helper.make_node(
        "EmbedLayerNormalization",
        ["input_ids", "", const("word_embeddings", word),
         const("position_embeddings", position + token_type[0]), "", gamma, beta,
         "attention_mask"],
        ["embedded", "mask_index"], domain=_MS, epsilon=EPSILON))
    hidden = "embedded"
    for n in range(LAYERS):
        layer = f"encoder.layer.{n}"
        qkv_weight = np.concatenate(
            [_weight(weights, f"{layer}.attention.self.{p}.weight", (HIDDEN, HIDDEN)).T
             for p in ("query", "key", "value")], axis=1)
        qkv_bias = np.concatenate(
            [_weight(weights, f"{layer}.attention.self.{p}.bias", (HIDDEN,))
             for p in ("query", "key", "value")])
        if precision.qkv == "int8":
            quantised, scale = per_channel_int8(qkv_weight, reduce_range=precision.reduce_range)
            nodes.append(helper.make_node(
                "DynamicQuantizeLinear", [hidden],
                [f"{hidden}.u8", f"{hidden}.u8scale", f"{hidden}.u8zero"]))
            nodes.append(helper.make_node(
                "QAttention",
                [f"{hidden}.u8", const(f"{layer}.qkv.q8", quantised),
                 const(f"{layer}.qkv.bias", qkv_bias), f"{hidden}.u8scale",
                 const(f"{layer}.qkv.scale", scale), "mask_index", f"{hidden}.u8zero",
                 const(f"{layer}.qkv.zero", np.zeros(scale.shape, dtype=np.int8))],
                [f"{layer}.attended"], domain=_MS, num_heads=HEADS))
        else:
            nodes.append(helper.make_node(
                "Attention",
                [hidden, const(f"{layer}.qkv.weight", qkv_weight),
                 const(f"{layer}.qkv.bias", qkv_bias), "mask_index"],
                [f"{layer}.attended"], domain=_MS, num_heads=HEADS))
        out_b = linear(f"{layer}.attention.output.dense", HIDDEN, HIDDEN, f"{layer}.attended",
                       precision.projection, f"{layer}.attention.projected")
        gamma, beta = norm(f"{layer}.attention.output.LayerNorm")
        nodes.append(helper.make_node(
            "SkipLayerNormalization", [f"{layer}.attention.projected", hidden, gamma, beta, out_b],
            [f"{layer}.attention.out"], domain=_MS, epsilon=EPSILON))
        up_b = linear(f"{layer}.intermediate.dense", INTERMEDIATE, HIDDEN,
                      f"{layer}.attention.out", precision.up, f"{layer}.up")
        nodes.append(helper.make_node("BiasGelu", [f"{layer}.up", up_b], [f"{layer}.gelu"],
                                      domain=_MS))
        down_b = linear(f"{layer}.output.dense", HIDDEN, INTERMEDIATE, f"{layer}.gelu",
                        precision.down, f"{layer}.down")
        gamma, beta = norm(f"{layer}.output.LayerNorm")
        output = "last_hidden_state" if n == LAYERS - 1 else f"{layer}.out"
        nodes.append(helper.make_node(
            "SkipLayerNormalization", [f"{layer}.down", f"{layer}.attention.out", gamma, beta,
                                       down_b],
            [output], domain=_MS, epsilon=EPSILON))
        hidden = output

    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["batch", "length"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT32, ["batch", "length"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                       ["batch", "length", HIDDEN])],
        [_external(TensorProto, name, value) for name, value in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in _OPSETS],
                              producer_name="conversa-ingest")
    model.ir_version = 8
    return EncoderModel(graph=model.SerializeToString(), initializers=arrays)


def _external(tensor_proto: Any, name: str, value: npt.NDArray[Any]) -> Any:
    """An initializer declared with its shape and its data supplied at session creation."""
    types = {np.dtype(np.float32): tensor_proto.FLOAT, np.dtype(np.int8): tensor_proto.INT8,
             np.dtype(np.uint8): tensor_proto.UINT8}
    tensor = tensor_proto(name=name, data_type=types[value.dtype], dims=list(value.shape))
    tensor.data_location = tensor_proto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "supplied-at-session-creation"
    return tensor
