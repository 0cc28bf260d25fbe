"""What this CPU offers the local embedder, read from ``/proc/cpuinfo``."""

import functools
from pathlib import Path

#: Instruction sets with 8-bit dot products that accumulate in 32 bits (``vpdpbusd``). Without
#: them onnxruntime's u8 x s8 products use AVX2's ``vpmaddubsw``, whose int16 pair sums can
#: saturate (onnxruntime's quantization guide: reduce the weights' range there).
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})
CPUINFO = Path("/proc/cpuinfo")


def read_flags(path: Path) -> frozenset[str]:
    """The first processor's feature flags in a cpuinfo file; empty if it cannot be read."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return frozenset()
    for row in text.splitlines():
        key, _, value = row.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@functools.cache
def has_vnni() -> bool:
    """Whether this machine's CPU has VNNI (read once per process)."""
    return bool(read_flags(CPUINFO) & VNNI_FLAGS)
