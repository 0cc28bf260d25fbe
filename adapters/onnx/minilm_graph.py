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

Inputs: ``input_ids`` and ``attention_mask`` (int32, batch x length, padded on the right);
output: ``last_hidden_state`` (float32, batch x length x 384).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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

Weights = Mapping[str, npt.NDArray[np.float32]]


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
    initializers: dict[str, npt.NDArray[np.float32]]


def build_model(weights: Weights) -> EncoderModel:
    """The encoder's ONNX graph for these weights (Hugging Face BertModel names, torch
    layout: a Linear's weight is out x in)."""
    try:
        from onnx import TensorProto, helper
    except ImportError as exc:
        raise ConfigurationError(
            "onnx is needed to build the local embedding model: install the local extra "
            "(pip install 'conversa-ingest[local]')") from exc

    arrays: dict[str, npt.NDArray[np.float32]] = {}
    nodes: list[Any] = []

    def const(name: str, value: npt.NDArray[np.float32]) -> str:
        arrays[name] = np.ascontiguousarray(value, dtype=np.float32)
        return name

    def linear(prefix: str, rows: int, cols: int) -> tuple[str, str]:
        """A Linear layer as (weight in x out, bias) initializer names."""
        weight = _weight(weights, f"{prefix}.weight", (rows, cols))
        bias = _weight(weights, f"{prefix}.bias", (rows,))
        return const(f"{prefix}.weight_t", weight.T), const(f"{prefix}.bias", bias)

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
        nodes.append(helper.make_node(
            "Attention",
            [hidden, const(f"{layer}.qkv.weight", qkv_weight),
             const(f"{layer}.qkv.bias", qkv_bias), "mask_index"],
            [f"{layer}.attended"], domain=_MS, num_heads=HEADS))
        out_w, out_b = linear(f"{layer}.attention.output.dense", HIDDEN, HIDDEN)
        nodes.append(helper.make_node("MatMul", [f"{layer}.attended", out_w],
                                      [f"{layer}.attention.projected"]))
        gamma, beta = norm(f"{layer}.attention.output.LayerNorm")
        nodes.append(helper.make_node(
            "SkipLayerNormalization", [f"{layer}.attention.projected", hidden, gamma, beta, out_b],
            [f"{layer}.attention.out"], domain=_MS, epsilon=EPSILON))
        up_w, up_b = linear(f"{layer}.intermediate.dense", INTERMEDIATE, HIDDEN)
        nodes.append(helper.make_node("MatMul", [f"{layer}.attention.out", up_w],
                                      [f"{layer}.up"]))
        nodes.append(helper.make_node("BiasGelu", [f"{layer}.up", up_b], [f"{layer}.gelu"],
                                      domain=_MS))
        down_w, down_b = linear(f"{layer}.output.dense", HIDDEN, INTERMEDIATE)
        nodes.append(helper.make_node("MatMul", [f"{layer}.gelu", down_w], [f"{layer}.down"]))
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


def _external(tensor_proto: Any, name: str, value: npt.NDArray[np.float32]) -> Any:
    """An initializer declared with its shape and its data supplied at session creation."""
    tensor = tensor_proto(name=name, data_type=tensor_proto.FLOAT, dims=list(value.shape))
    tensor.data_location = tensor_proto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "supplied-at-session-creation"
    return tensor
