"""Custom metadata a producer attaches to an upload: its names, types, sizes and how typed
values are read from text (no I/O).

A document version's custom metadata is stored on its record and copied onto every one of its
vectors beside the system's own fields (``SYSTEM_KEYS``), so search can filter on it on every
vector backend. Values are strings, numbers (finite), booleans or lists of strings (Pinecone's
metadata types); an ISO 8601 date or date-time becomes a number, its Unix seconds (UTC;
a date alone is its midnight), so date ranges are numeric ranges everywhere.
"""

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime

from domain.errors import PermanentError

MetadataValue = str | int | float | bool | list[str]

#: Fields the pipeline itself writes on every vector: custom metadata may not use these names.
SYSTEM_KEYS = frozenset({
    "document_id", "chunk_index", "source", "sha256", "chunks_key", "content_type",
    "keywords", "ingested_at",
})
#: A name: a letter, then letters, digits or underscores (safe as a MongoDB field, a SQL
#: identifier and a Pinecone field).
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
MAX_FIELDS = 64
MAX_LIST_ITEMS = 256
#: Pinecone keeps at most 40 KB of metadata per vector
#: (https://docs.pinecone.io/guides/index-data/indexing-overview#metadata). The system's own
#: fields take at most ``SYSTEM_METADATA_BYTES`` (a 1,024-character source and 50 keywords of
#: 64 characters, 4 bytes a character, plus ids and keys); custom metadata gets the rest.
PINECONE_METADATA_BYTES = 40 * 1024
SYSTEM_METADATA_BYTES = 4 * 1024 + 50 * (4 * 64 + 3) + 1024
MAX_METADATA_BYTES = PINECONE_METADATA_BYTES - SYSTEM_METADATA_BYTES

_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")


class InvalidMetadataError(PermanentError):
    """Custom metadata with a bad name, type or size (a client's mistake)."""


def metadata_size(metadata: Mapping[str, object]) -> int:
    """Bytes of the metadata as compact UTF-8 JSON (how Pinecone measures it)."""
    return len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidMetadataError(
            f"metadata name {name!r} is not valid: a letter, then up to 63 letters, digits "
            "or underscores")
    if name in SYSTEM_KEYS:
        raise InvalidMetadataError(
            f"metadata name {name!r} is one of the system's own fields "
            f"({', '.join(sorted(SYSTEM_KEYS))})")
    return name


def as_date_seconds(text: str) -> int | None:
    """Unix seconds of an ISO 8601 date (midnight UTC) or date-time (UTC unless it gives its
    zone), or None when ``text`` is not one."""
    text = text.strip()
    try:
        if _DATE.fullmatch(text):
            day = date.fromisoformat(text)
            return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        if _DATETIME.fullmatch(text):
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return int(moment.timestamp())
    except ValueError:
        raise InvalidMetadataError(f"{text!r} looks like a date but is not one") from None
    return None


def typed_value(value: object, name: str = "value") -> MetadataValue:
    """A metadata value as stored: a string in ISO date form becomes its Unix seconds; numbers
    must be finite; lists hold strings only. InvalidMetadataError for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetadataError(f"metadata {name!r}: numbers must be finite")
        return value
    if isinstance(value, str):
        seconds = as_date_seconds(value)
        return value if seconds is None else seconds
    if isinstance(value, list | tuple):
        if len(value) > MAX_LIST_ITEMS:
            raise InvalidMetadataError(
                f"metadata {name!r}: a list holds at most {MAX_LIST_ITEMS} items")
        if not all(isinstance(item, str) for item in value):
            raise InvalidMetadataError(f"metadata {name!r}: a list may hold strings only")
        return list(value)
    raise InvalidMetadataError(
        f"metadata {name!r}: a value is a string, a number, true/false, a date or a list of "
        f"strings, not {type(value).__name__}")


def normalize(metadata: Mapping[str, object] | None) -> dict[str, MetadataValue]:
    """Custom metadata checked and typed (``typed_value``): valid names, at most
    ``MAX_FIELDS`` fields and ``MAX_METADATA_BYTES`` bytes. Idempotent."""
    if not metadata:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidMetadataError("metadata must be an object of name: value")
    if len(metadata) > MAX_FIELDS:
        raise InvalidMetadataError(f"at most {MAX_FIELDS} metadata fields, got {len(metadata)}")
    checked = {check_name(name): typed_value(value, name) for name, value in metadata.items()}
    size = metadata_size(checked)
    if size > MAX_METADATA_BYTES:
        raise InvalidMetadataError(
            f"metadata of {size} bytes is over the limit of {MAX_METADATA_BYTES} (Pinecone "
            f"keeps {PINECONE_METADATA_BYTES} per vector, with the system's own fields)")
    return checked


def parse_text_value(text: str) -> MetadataValue:
    """A value given as text (the command line): an integer or decimal number (no leading
    zeros: ``007`` stays text), ``true``/``false``, an ISO date, or else the text itself;
    ``"..."`` (double quotes) keeps the text inside as a plain string."""
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        return typed_value(float(text))
    return typed_value(text)


def parse_pairs(pairs: Iterable[str]) -> dict[str, MetadataValue]:
    """``name=value`` pairs (``parse_text_value``) as metadata; a name given again makes a
    list of strings (``tag=a tag=b``). InvalidMetadataError names the bad pair."""
    values: dict[str, list[MetadataValue]] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise InvalidMetadataError(f"{pair!r} is not name=value")
        check_name(name.strip())
        values.setdefault(name.strip(), []).append(parse_text_value(text))
    merged: dict[str, object] = {}
    for name, items in values.items():
        if len(items) == 1:
            merged[name] = items[0]
        elif all(isinstance(item, str) for item in items):
            merged[name] = items
        else:
            raise InvalidMetadataError(
                f"metadata {name!r} is given {len(items)} times: only text values make a list")
    return normalize(merged)
