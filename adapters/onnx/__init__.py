"""The local Embedder: all-MiniLM-L6-v2 on onnxruntime (fp32 fused graph, or the int8 export)."""
