"""The stack a chaos scenario runs on: real servers and real processes, each one killable.

Valkey (with its append-only file) and the MongoDB-wire server run as their own processes on
fixed ports, so a scenario can kill -9 them and start them again on the same port and data.
S3 is moto's server behind a :class:`FaultProxy` (the workers, the CLI and the API talk to the
proxy; the checker reads moto directly); Pinecone and OpenAI are the fake HTTP servers. Celery
workers, beat (the reconciler, every few seconds) and the HTTP API on uvicorn are
subprocesses. Everything listens on 127.0.0.1 and everything started is stopped at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import redis

from localstack.servers import (
    free_port,
    log_tail,
    spawn,
    start_mongo,
    start_valkey,
    stop_process,
    wait_for_port,
)
from pipeline.bootstrap import Services, bootstrap
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_pinecone import FakePinecone
from tests.support.fault_proxy import FaultProxy
from tests.support.moto_server import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    moto_s3_server,
    unique_bucket,
)
from tests.support.workers import settings_from, stack_env, wait_ready

#: Wide enough that the fake's hashed bag of words keeps each marker word apart.
DIMENSION = 256
#: Limits small enough that redelivery, reconciling and retries happen within a scenario.
#: The visibility timeout must exceed the time limit plus the longest retry countdown.
CHAOS_ENV = {
    "CONVERSA_WORKER__SOFT_TIME_LIMIT": "12",
    "CONVERSA_WORKER__TIME_LIMIT": "15",
    "CONVERSA_WORKER__MAX_RETRIES": "6",
    "CONVERSA_WORKER__RETRY_BACKOFF_BASE": "1.5",
    "CONVERSA_WORKER__RETRY_BACKOFF_MAX": "2",
    "CONVERSA_WORKER__VISIBILITY_TIMEOUT": "20",
    "CONVERSA_WORKER__UNACKED_RESTORE_INTERVAL": "2",
    "CONVERSA_MAINTENANCE__RECONCILE_EVERY_SECONDS": "3",
    "CONVERSA_MAINTENANCE__STUCK_AFTER_SECONDS": "25",
    "CONVERSA_MONGO_TIMEOUT_MS": "3000",
    "CONVERSA_S3__MAX_ATTEMPTS": "2",
    "CONVERSA_S3__READ_TIMEOUT_S": "5",
    "CONVERSA_S3__CONNECT_TIMEOUT_S": "2",
    "CONVERSA_PINECONE__RETRIES": "1",
    "CONVERSA_PINECONE__TIMEOUT_S": "5",
    "CONVERSA_OPENAI__MAX_RETRIES": "2",
    "CONVERSA_OPENAI__RETRY_BUDGET_S": "4",
    "CONVERSA_OPENAI__TIMEOUT_S": "5",
    "CONVERSA_CHUNKING__SIZE_TOKENS": "120",
    "CONVERSA_CHUNKING__OVERLAP_TOKENS": "20",
    # A zip bomb of a few MiB is enough to be refused.
    "CONVERSA_PARSING__MAX_UNZIPPED_BYTES": str(4 * 1024 * 1024),
}
#: Seconds from the fault to a job's end, by how jobs come back: at once (a retry or a
#: redelivery), after the visibility timeout plus a restore interval, or through the
#: reconciler (stuck after 25 s, run every 3 s); each plus a minute for the queue to drain
#: on a loaded 2-core machine.
DRAIN_S = 60.0
RECOVERY_BOUNDS = {
    "retry": DRAIN_S,
    "visibility": 20 + 2 + DRAIN_S,
    "reconciler": 25 + 3 + DRAIN_S,
}
READY_TIMEOUT = 90.0


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    concurrency: int

    def pool(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]


@dataclass
class ChaosStack:
    """Handles on every server and process of one scenario's stack."""

    workdir: Path
    env: dict[str, str]
    bucket: str
    s3_direct: str
    proxy: FaultProxy
    pinecone: FakePinecone
    openai: FakeOpenAI
    valkey_port: int
    mongo_port: int
    api_url: str = ""
    valkey: subprocess.Popen[bytes] | None = None
    mongo: subprocess.Popen[bytes] | None = None
    workers: list[Worker] = field(default_factory=list)
    #: every tenant a workload signed up on this stack
    tenants: set[str] = field(default_factory=set)
    _others: list[subprocess.Popen[bytes]] = field(default_factory=list)
    startup_seconds: float = 0.0
    _count: int = 0
    _services: Services | None = None

    # --- servers ---------------------------------------------------------------------------

    def start_valkey(self) -> None:
        self.valkey = start_valkey(self.valkey_port, self.workdir / "valkey",
                                   self.workdir / "logs" / "valkey.log", appendonly=True)

    def kill_valkey(self) -> None:
        assert self.valkey is not None
        os.killpg(self.valkey.pid, signal.SIGKILL)
        self.valkey.wait()

    def start_mongo(self) -> None:
        self.mongo = start_mongo(self.mongo_port, self.workdir / "mongodb",
                                 self.workdir / "logs" / "mongodb.log")

    def kill_mongo(self) -> None:
        assert self.mongo is not None
        os.killpg(self.mongo.pid, signal.SIGKILL)
        self.mongo.wait()

    def broker(self) -> redis.Redis:
        return redis.Redis.from_url(self.env["CONVERSA_BROKER_URL"])

    # --- processes -------------------------------------------------------------------------

    def start_worker(self, concurrency: int = 2) -> Worker:
        self._count += 1
        name = f"chaos{self._count}"
        log = self.workdir / "logs" / f"worker-{name}.log"
        proc = spawn([sys.executable, "-m", "cli", "worker", "-c", str(concurrency),
                      "-n", f"{name}@%h"], log, self.env)
        wait_ready(proc, log)
        worker = Worker(name, proc, log, concurrency)
        self.workers.append(worker)
        return worker

    def stop_worker(self, worker: Worker, timeout: float = 60) -> None:
        if worker.proc.poll() is None:
            stop_process(worker.proc, timeout=timeout)

    def start_beat(self) -> None:
        log = self.workdir / "logs" / "beat.log"
        self._others.append(spawn(
            [sys.executable, "-m", "celery", "-A", "workers", "beat", "--loglevel", "INFO",
             "-s", str(self.workdir / "beat-schedule")], log, self.env))

    def start_api(self) -> None:
        port = free_port()
        log = self.workdir / "logs" / "api.log"
        proc = spawn([sys.executable, "-m", "uvicorn", "api.main:app", "--factory",
                      "--host", "127.0.0.1", "--port", str(port), "--no-server-header"],
                     log, self.env)
        self._others.append(proc)
        wait_for_port("127.0.0.1", port, READY_TIMEOUT, proc, log_path=log)
        self.api_url = f"http://127.0.0.1:{port}"

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def services(self) -> Services:
        """Services reading the stores directly (S3 without the proxy), for checking."""
        env = {**self.env, "CONVERSA_S3__ENDPOINT_URL": self.s3_direct}
        return bootstrap(settings_from(env))

    def services_cache(self) -> Services:
        """One :meth:`services` for the whole scenario."""
        if self._services is None:
            self._services = self.services()
        return self._services

    def s3_keys(self) -> list[str]:
        client = boto3.client("s3", endpoint_url=self.s3_direct, region_name=REGION,
                              aws_access_key_id=ACCESS_KEY_ID,
                              aws_secret_access_key=SECRET_ACCESS_KEY)
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def logs(self) -> str:
        """The tail of every log, for a failure message."""
        return "\n".join(f"--- {path.name} ---\n{log_tail(path, 3000)}"
                         for path in sorted((self.workdir / "logs").glob("*.log")))

    def _stop_all(self) -> None:
        for worker in self.workers:
            self.stop_worker(worker, timeout=30)
        for proc in self._others:
            if proc.poll() is None:
                stop_process(proc)
        for server in (self.mongo, self.valkey):
            if server is not None and server.poll() is None:
                stop_process(server)


def production_env(base: dict[str, str], s3: str, bucket: str, pinecone: FakePinecone,
                   openai: FakeOpenAI) -> dict[str, str]:
    return {
        **base, **CHAOS_ENV,
        "CONVERSA_OBJECT_STORE": "s3",
        "CONVERSA_S3__BUCKET": bucket,
        "CONVERSA_S3__ENDPOINT_URL": s3,
        "CONVERSA_S3__REGION": REGION,
        "CONVERSA_S3__ACCESS_KEY_ID": ACCESS_KEY_ID,
        "CONVERSA_S3__SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "CONVERSA_S3__CREATE_BUCKET": "true",
        "CONVERSA_VECTOR_INDEX": "pinecone",
        "CONVERSA_PINECONE__HOST": pinecone.url,
        "CONVERSA_PINECONE__API_KEY": pinecone.api_key,
        "CONVERSA_EMBEDDER": "openai",
        "CONVERSA_KEYWORDS": "openai",
        "CONVERSA_OPENAI__API_KEY": openai.api_key,
        "CONVERSA_OPENAI__BASE_URL": openai.base_url,
        "CONVERSA_OPENAI__EMBEDDING_DIMENSION": str(DIMENSION),
        "CONVERSA_OPENAI__EMBEDDING_REQUESTS_PER_MINUTE": "0",
        "CONVERSA_OPENAI__KEYWORDS_REQUESTS_PER_MINUTE": "0",
    }


@contextmanager
def chaos_stack(workdir: Path, *, workers: int = 1, concurrency: int = 2,
                data_dir: Path | None = None, env: dict[str, str] | None = None
                ) -> Iterator[ChaosStack]:
    """A whole stack under ``workdir``: servers, ``workers`` workers, beat and the API;
    ``env`` overrides settings of :data:`CHAOS_ENV`."""
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    with ExitStack() as resources:
        s3_direct = resources.enter_context(moto_s3_server())
        proxy = resources.enter_context(FaultProxy(s3_direct))
        pinecone = resources.enter_context(FakePinecone(dimension=DIMENSION))
        openai = resources.enter_context(FakeOpenAI())
        valkey_port, mongo_port = free_port(), free_port()
        base = stack_env(f"redis://127.0.0.1:{valkey_port}/0",
                         f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true",
                         "chaos", data_dir or workdir / "data")
        bucket = unique_bucket("chaos")
        stack = ChaosStack(workdir=workdir, bucket=bucket, s3_direct=s3_direct, proxy=proxy,
                           pinecone=pinecone, openai=openai, valkey_port=valkey_port,
                           mongo_port=mongo_port,
                           env={**production_env(base, proxy.url, bucket, pinecone, openai),
                                **(env or {})})
        resources.callback(stack._stop_all)
        stack.start_valkey()
        stack.start_mongo()
        started = time.monotonic()
        for _ in range(workers):
            stack.start_worker(concurrency)
        stack.start_beat()
        stack.start_api()
        stack.startup_seconds = time.monotonic() - started
        yield stack
