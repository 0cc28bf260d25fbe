"""Benchmark: peak memory of S3 uploads through the adapter, a 200 MB file next to a 20 MB one.

Starts moto's S3 server on a loopback port (in this process) and uploads each file with
S3ObjectStore.upload_file from a fresh child process, which reports how far its peak resident
memory rose above its resident memory just before the upload. If uploads were buffered whole,
the 200 MB figure would be ten times the 20 MB one; streamed, both stay near the parts in flight
(``max_concurrency`` x ``multipart_chunksize``, 4 x 8 MiB by default).

The files are sparse (zeros), so nothing large is written to disk. Linux only: the child reads
its peak from /proc/self/status (VmHWM), after resetting it through /proc/self/clear_refs;
``ru_maxrss`` would not do, as Linux carries it over fork and exec from this process, which
holds moto's copy of every uploaded byte.

    .venv/bin/python bench/s3_upload_memory.py [--sizes-mb 200 20] [--chunk-mib 8] [--concurrency 4]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.moto_server import moto_s3_server, unique_bucket  # noqa: E402

CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from adapters.s3.object_store import MIB, S3ObjectStore

    def status_kib(field):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise LookupError(field)

    endpoint, bucket, path, chunk_mib, concurrency = sys.argv[1:6]
    store = S3ObjectStore(
        bucket, endpoint_url=endpoint, region="us-east-1", create_bucket=True,
        access_key_id="bench-access-key", secret_access_key="bench-secret-key",
        multipart_threshold=int(chunk_mib) * MIB, multipart_chunksize=int(chunk_mib) * MIB,
        max_concurrency=int(concurrency))
    warm = Path(path + ".warm")
    warm.write_bytes(b"w" * 1024)
    store.upload_file("bench/warm", warm, {})  # imports, client and bucket before measuring
    before = status_kib("VmRSS")
    reset = True
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        reset = False  # the peak then includes start-up: an upper bound
    started = time.perf_counter()
    info = store.upload_file("bench/object", Path(path), {"source_name": "bench.bin"})
    seconds = time.perf_counter() - started
    print(json.dumps({"size": info.size, "before_kib": before,
                      "peak_kib": status_kib("VmHWM"), "seconds": seconds, "reset": reset}))
""")


def measure(
    endpoint: str, size: int, tmp: Path, chunk_mib: int, concurrency: int
) -> dict[str, Any]:
    path = tmp / f"upload-{size}.bin"
    with path.open("wb") as handle:
        handle.truncate(size)
    try:
        result = subprocess.run(
            [sys.executable, "-c", CHILD, endpoint, unique_bucket("bench"), str(path),
             str(chunk_mib), str(concurrency)],
            capture_output=True, text=True, cwd=ROOT, check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        path.unlink()
    if result.returncode != 0:
        raise SystemExit(f"upload of {size} bytes failed:\n{result.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[200, 20])
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    rows = []
    started = time.perf_counter()
    with (tempfile.TemporaryDirectory(prefix="conversa-s3-bench-") as tmp_name,
          moto_s3_server() as endpoint):
        for size_mb in args.sizes_mb:
            measured = measure(endpoint, size_mb * 1000 * 1000, Path(tmp_name),
                               args.chunk_mib, args.concurrency)
            growth_mb = (measured["peak_kib"] - measured["before_kib"]) / 1024
            rows.append((size_mb, growth_mb, measured))

    print(f"S3 upload memory (moto server, {args.chunk_mib} MiB parts, "
          f"{args.concurrency} in flight; {time.perf_counter() - started:.0f} s in all)")
    print(f"{'file':>8}  {'RSS before':>10}  {'peak growth':>11}  {'upload':>8}")
    for size_mb, growth_mb, measured in rows:
        note = "" if measured["reset"] else "  (peak not reset: upper bound)"
        print(f"{size_mb:>5} MB  {measured['before_kib'] / 1024:>7.0f} MB  {growth_mb:>8.1f} MB"
              f"  {measured['seconds']:>6.1f} s{note}")
    if len(rows) >= 2 and rows[-1][1] > 0:
        (big_mb, big_growth, _), (small_mb, small_growth, _) = rows[0], rows[-1]
        print(f"file size ratio {big_mb / small_mb:.1f}x, memory growth ratio "
              f"{big_growth / small_growth:.2f}x")


if __name__ == "__main__":
    main()
