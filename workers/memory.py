"""How a pool process uses glibc's malloc, so memory freed by a task goes back to the system.

Measured in a pool process of the local stack (``bench/corpus.py``, ``bench/growth.py``):
glibc's default raises its mmap threshold each time a large block is freed (up to 32 MiB),
so after the model load and the first large batches every numpy array, ONNX Runtime buffer
and Arrow batch of a task comes from the heap instead of its own mapping, and the heap keeps
its high-water mark: the resident size after a task is near the peak of the largest task
so far. Three settings, applied in each pool process when it starts:

- a fixed mmap threshold (``malloc_mmap_threshold_bytes``, 4 MiB; fixing it turns the
  dynamic raise off): blocks above it are mapped on their own and unmapped when freed. It
  stays above one text's tensors in the model (~1.5 MB): at 128 KiB each of them was
  mapped, faulted in page by page and unmapped on every run (3.2 million page faults and
  1.55x the CPU for 300 chunks, a scratch timing of the embedder with and without it);
- at most ``malloc_arena_max`` arenas (glibc makes up to 8 per core, one per thread that
  allocates: LanceDB's and ONNX Runtime's threads each hold free memory of their own);
- ``malloc_trim(0)`` after each task, which hands back the free pages inside the heap.

Only glibc has these calls; elsewhere (musl, macOS) nothing is changed.
"""

import ctypes
import ctypes.util
import functools
import logging
from typing import Any

log = logging.getLogger(__name__)

#: mallopt() parameters, from glibc's malloc.h.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


@functools.cache
def _glibc() -> Any | None:
    """glibc's handle, or None on another C library."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
    except (OSError, AttributeError):
        return None
    return libc


def tune(*, arena_max: int, mmap_threshold_bytes: int) -> bool:
    """Apply the settings above to this process (0 leaves one unchanged); False when the
    C library is not glibc or refused a setting."""
    libc = _glibc()
    if libc is None:
        return False
    applied = True
    if arena_max > 0:
        applied = bool(libc.mallopt(M_ARENA_MAX, arena_max)) and applied
    if mmap_threshold_bytes > 0:
        applied = bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold_bytes)) and applied
    if not applied:
        log.warning("mallopt refused arena_max=%d or mmap_threshold=%d", arena_max,
                    mmap_threshold_bytes)
    return applied


def trim() -> bool:
    """Return the free pages of every arena to the system; True if any were returned."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))
