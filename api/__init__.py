"""The HTTP API: FastAPI controllers over the same pipeline functions the CLI calls."""
