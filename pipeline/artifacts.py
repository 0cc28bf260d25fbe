"""Claim-check payloads the stages write to the object store: chunks and embeddings."""

import io
import json
from dataclasses import dataclass

import numpy as np

from adapters.ports import ObjectStore
from domain.documents import derived_key
from domain.errors import PermanentError

CHUNKS_FORMAT = 2


@dataclass(frozen=True)
class ChunkText:
    """A chunk as stored: its text, character offsets into the parsed text, page, section."""

    index: int
    text: str
    start: int
    end: int
    page: int | None = None
    section: str | None = None


@dataclass(frozen=True)
class ChunkSet:
    """What the extract stage derived from one content: chunks and keywords."""

    content_type: str
    keywords: list[str]
    chunks: list[ChunkText]


def chunks_key(tenant: str, sha256: str, tokenizer: str, size: int, overlap: int) -> str:
    """Chunks of one content, per chunker format, tokenizer (the embedder's) and sizes."""
    name = f"chunks-v{CHUNKS_FORMAT}-{_safe(tokenizer)}-t{size}-o{overlap}.json"
    return derived_key(tenant, sha256, name)


def embeddings_key(chunks_object_key: str, model_name: str) -> str:
    return f"{chunks_object_key.removesuffix('.json')}.{_safe(model_name)}.npy"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def save_chunks(objects: ObjectStore, key: str, chunk_set: ChunkSet) -> int:
    """Store the chunks; returns the bytes stored."""
    payload = {
        "format": CHUNKS_FORMAT,
        "content_type": chunk_set.content_type,
        "keywords": chunk_set.keywords,
        "chunks": [c.__dict__ for c in chunk_set.chunks],
    }
    return objects.put_bytes(key, json.dumps(payload).encode(), {"kind": "chunks"}).size


def load_chunks(objects: ObjectStore, key: str) -> ChunkSet:
    try:
        payload = json.loads(objects.get_bytes(key))
        return ChunkSet(
            content_type=payload["content_type"],
            keywords=list(payload["keywords"]),
            chunks=[ChunkText(**c) for c in payload["chunks"]],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"stored chunks {key} are unreadable: {exc}") from exc


def save_embeddings(objects: ObjectStore, key: str, vectors: np.ndarray) -> int:
    """Store the embeddings; returns the bytes stored."""
    buffer = io.BytesIO()
    np.save(buffer, vectors.astype(np.float32), allow_pickle=False)
    return objects.put_bytes(key, buffer.getvalue(), {"kind": "embeddings"}).size


def load_embeddings(objects: ObjectStore, key: str) -> np.ndarray:
    try:
        loaded: np.ndarray = np.load(io.BytesIO(objects.get_bytes(key)), allow_pickle=False)
    except ValueError as exc:
        raise PermanentError(f"stored embeddings {key} are unreadable: {exc}") from exc
    return loaded
