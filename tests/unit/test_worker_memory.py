"""The pool process's malloc settings (workers/memory.py), each in a fresh interpreter so this
test process keeps glibc's defaults."""

import platform
import subprocess
import sys
import textwrap

import pytest

from pipeline.settings import WorkerSettings

GLIBC = platform.libc_ver()[0] == "glibc"


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="mallopt and malloc_trim are glibc's")
def test_the_default_settings_are_applied() -> None:
    defaults = WorkerSettings()
    out = run(f"""
        from workers import memory
        print(memory.tune(arena_max={defaults.malloc_arena_max},
                          mmap_threshold_bytes={defaults.malloc_mmap_threshold_bytes}))
    """)
    assert out == "True"


@pytest.mark.skipif(not GLIBC, reason="mallopt and malloc_trim are glibc's")
def test_freed_large_blocks_leave_the_process_with_the_fixed_threshold() -> None:
    """Without the fixed threshold, glibc raises it when the first large block is freed and
    the blocks after it stay in the heap; with it, they are unmapped when freed."""
    code = """
        import sys

        def rss_mb():
            for row in open("/proc/self/status"):
                if row.startswith("VmRSS"):
                    return int(row.split()[1]) / 1024

        if sys.argv[1] == "tuned":
            from workers import memory
            memory.tune(arena_max=2, mmap_threshold_bytes=128 * 1024)
        first = bytearray(8 << 20)
        del first  # glibc's default raises the threshold above 8 MiB here
        base = rss_mb()
        blocks, pins = [], []
        for _ in range(50):  # 200 MiB, touched, each followed by a small block still in use
            blocks.append(bytearray(4 << 20))
            pins.append(bytearray(1024))
        del blocks
        print(round(rss_mb() - base))
    """
    def kept(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), mode],
                              capture_output=True, text=True, check=True)
        return int(done.stdout.strip())

    assert kept("tuned") < 20
    assert kept("default") > 150  # the case the setting is for


def test_trim_answers_on_any_c_library() -> None:
    assert run("from workers import memory; print(memory.trim() in (True, False))") == "True"
