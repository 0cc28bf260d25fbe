"""Benchmark: what one document costs per stage on the production adapters: CPU seconds in the
pipeline's process and calls to each service (S3, MongoDB, Pinecone, OpenAI).

The services run in a separate process, so their own CPU is not counted: moto's S3 server (each
request counted by a small WSGI wrapper), the fake Pinecone and OpenAI servers of tests/support
(which count requests and tokens), and a SecantusDB MongoDB-wire server (commands counted in
this process by pymongo's command monitoring). Each stage function runs in this process, one
document after another, exactly as a worker's pool process runs it (no Celery in between, so
broker costs are not included), with the CPU time (``time.process_time``, all threads of this
process, so boto3's transfer threads count too) and the call counts taken around each call.
The documents are the files of --folder (default samples/) repeated --copies times, each copy
with a line of its own and its own source, so every copy is stored, parsed, embedded and
indexed afresh (nothing is deduplicated or reused).

    .venv/bin/python bench/capacity.py [--folder samples] [--copies 5]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIMENSION = 1536
TENANT = "bench"


# -- the servers' process ------------------------------------------------------------------

def serve() -> None:
    """Start moto's S3 server and the fakes, print their addresses, answer "counts" lines."""
    import logging

    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from tests.support.fake_openai import FakeOpenAI
    from tests.support.fake_pinecone import FakePinecone

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    s3_requests = Counter()
    lock = threading.Lock()
    moto_app = DomainDispatcherApplication(create_backend_app)

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        with lock:
            s3_requests[environ["REQUEST_METHOD"]] += 1
        return moto_app(environ, start_response)

    server = make_server("127.0.0.1", 0, counting, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pinecone = FakePinecone(dimension=DIMENSION).start()
    openai = FakeOpenAI().start()
    print(json.dumps({"s3": f"http://127.0.0.1:{server.server_port}", "pinecone": pinecone.url,
                      "pinecone_key": pinecone.api_key, "openai": openai.base_url,
                      "openai_key": openai.api_key}), flush=True)
    for line in sys.stdin:
        if line.strip() != "counts":
            continue
        records = openai.records()
        embeddings = [r for r in records if r.path.endswith("/embeddings")]
        chats = [r for r in records if r.path.endswith("/chat/completions")]
        with lock:
            s3 = sum(s3_requests.values())
        print(json.dumps({
            "s3": s3, "pinecone": len(pinecone.requests()),
            "pinecone_vectors": sum(r.vector_count for r in pinecone.requests()),
            "openai_embeddings": len(embeddings),
            "openai_embedding_tokens": sum(r.tokens for r in embeddings),
            "openai_chat": len(chats), "openai_chat_tokens": sum(r.tokens for r in chats),
        }), flush=True)
    server.shutdown()
    pinecone.stop()
    openai.stop()


# -- the measuring process -------------------------------------------------------------------

class MongoCommands:
    """pymongo's command monitoring: every command this process sends, by name."""

    def __init__(self) -> None:
        from pymongo import monitoring

        self.counts: Counter[str] = Counter()
        listener = self

        class Listener(monitoring.CommandListener):
            def started(self, event: Any) -> None:
                listener.counts[event.command_name] += 1

            def succeeded(self, event: Any) -> None:
                pass

            def failed(self, event: Any) -> None:
                pass

        monitoring.register(Listener())

    def total(self) -> int:
        # The driver's own heartbeats are not the pipeline's calls.
        return sum(n for name, n in self.counts.items()
                   if name not in ("hello", "ismaster", "isMaster", "ping", "endSessions"))


class Servers:
    def __init__(self) -> None:
        self._proc = subprocess.Popen([sys.executable, __file__, "--serve"], cwd=ROOT,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self.addresses = json.loads(self._proc.stdout.readline())

    def counts(self) -> dict[str, int]:
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write("counts\n")
        self._proc.stdin.flush()
        return dict(json.loads(self._proc.stdout.readline()))

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=30)


class NoDispatch:
    """The stages are called here one by one; nothing goes to a broker."""

    def dispatch(self, job_id: str, stage: Any) -> None:
        pass


def measure(folder: Path, copies: int) -> None:
    from domain.status import STAGES, JobStatus
    from pipeline.bootstrap import bootstrap
    from pipeline.producer import enqueue, upload_file_event
    from pipeline.settings import Settings
    from pipeline.stages import STAGE_FUNCTIONS
    from tests.support.servers import mongo_server

    mongo = MongoCommands()
    servers = Servers()
    try:
        with tempfile.TemporaryDirectory(prefix="conversa-capacity-") as tmp_name:
            tmp = Path(tmp_name)
            with mongo_server(tmp / "mongo") as mongo_url:
                a = servers.addresses
                settings = Settings(
                    data_dir=tmp / "data", mongo_url=mongo_url, broker_url="redis://unused:1/0",
                    object_store="s3", vector_index="pinecone", embedder="openai",
                    keywords="openai",
                    s3={"bucket": f"bench-{uuid.uuid4().hex[:12]}", "endpoint_url": a["s3"],
                        "region": "us-east-1", "access_key_id": "bench",
                        "secret_access_key": "bench", "create_bucket": True},
                    pinecone={"host": a["pinecone"], "api_key": a["pinecone_key"]},
                    openai={"base_url": a["openai"], "api_key": a["openai_key"],
                            "embedding_dimension": DIMENSION,
                            "embedding_requests_per_minute": 0,
                            "embedding_tokens_per_minute": 0,
                            "keywords_requests_per_minute": 0,
                            "keywords_tokens_per_minute": 0})
                services = bootstrap(settings, dispatcher=NoDispatch())
                # Every copy gets a line of its own, so no content is reused across copies.
                files = []
                for copy in range(copies + 1):
                    for source in sorted(p for p in folder.iterdir() if p.is_file()):
                        target = tmp / "corpus" / f"copy{copy}" / source.name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_text(source.read_text() + f"\n\nCopy {copy} of "
                                          f"{source.stem}.\n")
                        files.append(target)
                warm_file, files = files[0], files[len(files) // (copies + 1):]
                rows: dict[str, dict[str, float]] = {}

                def timed(name: str, call: Any) -> Any:
                    before, mongo_before = servers.counts(), mongo.total()
                    started = time.process_time()
                    result = call()
                    cpu = time.process_time() - started
                    after, mongo_after = servers.counts(), mongo.total()
                    row = rows.setdefault(name, Counter())
                    row["cpu_s"] += cpu
                    row["mongodb"] += mongo_after - mongo_before
                    for key in after:
                        row[key] += after[key] - before[key]
                    return result

                # One warm-up document: clients, connections, the bucket, first imports.
                warm = timed("warm-up", lambda: enqueue(services, upload_file_event(
                    services, warm_file, TENANT, source="warm-up")))
                for stage in STAGES:
                    STAGE_FUNCTIONS[stage](services, warm.job_id)
                rows.clear()

                jobs = [timed("enqueue", lambda p=path: enqueue(services, upload_file_event(
                    services, p, TENANT, source=f"{p.parent.name}/{p.name}"))) for path in files]
                for stage in STAGES:
                    for job in jobs:
                        timed(stage.value, lambda j=job, s=stage: STAGE_FUNCTIONS[s](
                            services, j.job_id))
                done = [services.jobs.get(job.job_id) for job in jobs]
                assert all(job.status is JobStatus.DONE for job in done), [
                    (job.status, job.error) for job in done]
                report(rows, done)
    finally:
        servers.close()


def report(rows: dict[str, dict[str, float]], jobs: list[Any]) -> None:
    count = len(jobs)
    chunks = sum(job.chunk_count or 0 for job in jobs) / count
    size = sum(job.size or 0 for job in jobs) / count
    print(f"{count} documents, {size / 1024:.1f} KiB and {chunks:.1f} chunks each on average "
          f"(embedding dimension {DIMENSION})\n")
    columns = ("cpu_s", "s3", "mongodb", "pinecone", "openai_embeddings", "openai_chat",
               "openai_embedding_tokens", "openai_chat_tokens", "pinecone_vectors")
    headers = ("CPU ms", "S3", "MongoDB", "Pinecone", "OAI emb", "OAI chat", "emb tokens",
               "chat tokens", "vectors")
    print(f"{'per document':<10}" + "".join(f"{h:>12}" for h in headers))
    total: Counter[str] = Counter()
    for name, row in rows.items():
        total.update(row)
        cells = [row["cpu_s"] * 1000 / count] + [row.get(c, 0) / count for c in columns[1:]]
        print(f"{name:<10}" + "".join(f"{v:>12.1f}" for v in cells))
    cells = [total["cpu_s"] * 1000 / count] + [total.get(c, 0) / count for c in columns[1:]]
    print(f"{'total':<10}" + "".join(f"{v:>12.1f}" for v in cells))
    all_chunks = chunks * count
    print(f"\nper chunk ({all_chunks:.0f} chunks)")
    for name in ("extract", "embed", "index"):
        row = rows[name]
        print(f"{name:<10}{row['cpu_s'] * 1000 / all_chunks:>12.2f} CPU ms"
              f"{row.get('openai_embedding_tokens', 0) / all_chunks:>12.1f} embedding tokens")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=ROOT / "samples")
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
    else:
        measure(args.folder, args.copies)


if __name__ == "__main__":
    main()
