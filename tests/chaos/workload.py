"""The chaos workload: uniquely marked documents of three tenants, through the CLI and the HTTP
API, with updates and deletes while others flow; every accepted upload goes in a ledger the
checker compares the stores against.

Each document's text repeats one marker word in every paragraph (so every chunk carries it)
that no other document has: a search for the marker finds the document in its tenant, and must
find nothing of it in any other tenant or after it was deleted.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.chaos.stack import ChaosStack
from tests.support.chaos_check import Delete, Ledger, Upload

WORDS = (
    "harbour", "tide", "lantern", "keeper", "granite", "shoal", "beacon", "channel", "ferry",
    "rope", "anchor", "gull", "current", "pier", "reef", "compass", "quay", "mooring", "hull",
    "buoy", "dune", "estuary", "cliff", "storm", "spray", "ledger", "cargo", "mast", "rigging",
    "chart", "fathom",
)
#: API calls are retried this long through a fault (an outage of Valkey, MongoDB or S3).
API_PATIENCE_S = 60.0


def marked_text(marker: str, rng: random.Random, paragraphs: int = 3) -> str:
    lines = []
    for _ in range(paragraphs):
        words = [rng.choice(WORDS) for _ in range(45)]
        words.insert(rng.randrange(len(words)), marker)
        lines.append(" ".join(words).capitalize() + ".")
    return "\n\n".join(lines) + "\n"


@dataclass
class Tenant:
    name: str
    key: str


@dataclass
class Workload:
    """Drives uploads, updates and deletes against one stack and records what was accepted."""

    stack: ChaosStack
    per_tenant: int = 6
    seed: int = 7
    ledger: Ledger = field(default_factory=Ledger)
    tenants: list[Tenant] = field(default_factory=list)
    rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.files = self.stack.workdir / "files"
        self.client = httpx.Client(base_url=self.stack.api_url, timeout=30)

    def close(self) -> None:
        self.client.close()

    # --- accounts --------------------------------------------------------------------------

    def sign_up(self, count: int = 3) -> None:
        outbox = Path(self.stack.env["CONVERSA_DATA_DIR"]) / "outbox.jsonl"
        for n in range(count):
            email = f"chaos{n}-{uuid.uuid4().hex[:6]}@example.com"
            self._call("POST", "/v1/users", json={"email": email})
            code = [json.loads(line)["code"] for line in outbox.read_text().splitlines()
                    if json.loads(line)["to"] == email][-1]
            answer = self._call("POST", "/v1/users/verify",
                                json={"email": email, "code": code}).json()
            self.tenants.append(Tenant(answer["tenant"], answer["api_key"]))

    # --- uploads ---------------------------------------------------------------------------

    def new_marker(self, tenant: str) -> str:
        return f"zq{hashlib.sha256(f'{tenant}{uuid.uuid4()}'.encode()).hexdigest()[:10]}"

    def ingest_all(self) -> None:
        """Half of each tenant's documents through the CLI, half through the API; the
        tenants at the same time."""
        def one(tenant: Tenant) -> None:
            self.ingest_cli(tenant, self.per_tenant // 2)
            for _ in range(self.per_tenant - self.per_tenant // 2):
                self.upload_api(tenant)

        with ThreadPoolExecutor(max_workers=len(self.tenants) or 1) as pool:
            for done in [pool.submit(one, tenant) for tenant in self.tenants]:
                done.result()

    def ingest_cli(self, tenant: Tenant, count: int,
                   extra: dict[str, bytes] | None = None) -> None:
        folder = self.files / f"cli-{tenant.name}-{uuid.uuid4().hex[:6]}"
        folder.mkdir(parents=True)
        written: dict[Path, tuple[str | None, bytes]] = {}
        for _ in range(count):
            marker = self.new_marker(tenant.name)
            data = marked_text(marker, self.rng).encode()
            path = folder / f"{marker}.md"
            path.write_bytes(data)
            written[path.resolve()] = (marker, data)
        for name, data in (extra or {}).items():
            path = folder / name
            path.write_bytes(data)
            written[path.resolve()] = (None, data)
        for _ in range(3):
            run = self.stack.cli("ingest", str(folder), "--tenant", tenant.name, "--json")
            if run.returncode == 0:
                break
            # An operator runs it again; the jobs of the failed run were never reported.
            self.ledger.unanswered += len(written)
            self.ledger.api_errors.append(f"conversa ingest: {run.stderr.strip()[:200]}")
            time.sleep(2.0)
        else:
            raise AssertionError(f"conversa ingest failed 3 times: {run.stderr}")
        for line in run.stdout.splitlines():
            job = json.loads(line)
            found, content = written[Path(job["source"])]
            self._accept(Upload(tenant=tenant.name, source=job["source"],
                                document_id=job["document_id"], job_id=job["job_id"],
                                marker=found, sha256=hashlib.sha256(content).hexdigest(),
                                via="cli", accepted_at=time.time()))

    def upload_api(self, tenant: Tenant, *, source: str | None = None, data: bytes | None = None,
                   name: str | None = None, marker: str | None = None) -> Upload | None:
        """One multipart upload; a new marked document unless ``data`` is given."""
        if data is None:
            marker = marker or self.new_marker(tenant.name)
            data = marked_text(marker, self.rng).encode()
        name = name or f"{marker or 'file'}.md"
        fields = {"source": source} if source else {}
        answer = self._call("POST", "/v1/ingestions", key=tenant.key, data=fields,
                            files={"file": (name, data, "application/octet-stream")},
                            accept=(202, 400, 413, 415))
        if answer.status_code != 202:
            self.ledger.refused.append((tenant.name, name, answer.status_code))
            return None
        body = answer.json()
        upload = Upload(tenant=tenant.name, source=source or name,
                        document_id=body["document_id"], job_id=body["job_id"], marker=marker,
                        sha256=hashlib.sha256(data).hexdigest(), via="api",
                        accepted_at=time.time())
        self._accept(upload)
        return upload

    def update(self, upload: Upload) -> Upload | None:
        """New content for the same document (same source), with a new marker."""
        tenant = self._tenant(upload.tenant)
        return self.upload_api(tenant, source=upload.source, marker=self.new_marker(tenant.name))

    def delete(self, tenant_name: str, document_id: str) -> None:
        tenant = self._tenant(tenant_name)
        self._call("DELETE", f"/v1/documents/{document_id}", key=tenant.key, accept=(200,))
        with self._lock:
            self.ledger.deletes.append(Delete(tenant_name, document_id, time.time()))

    # --- while the jobs flow ---------------------------------------------------------------

    def churn(self, updates: int = 1, deletes: int = 1, timeout: float = 120) -> None:
        """Per tenant: update ``updates`` and delete ``deletes`` documents whose latest job is
        done, while the other documents are still on their way."""
        for tenant in self.tenants:
            picked = self._done_documents(tenant.name, updates + deletes, timeout)
            for upload in picked[:updates]:
                self.update(upload)
            for upload in picked[updates:updates + deletes]:
                self.delete(tenant.name, upload.document_id)

    def _done_documents(self, tenant: str, count: int, timeout: float) -> list[Upload]:
        deadline = time.monotonic() + timeout
        services = self.stack.services_cache()
        while True:
            latest = self.ledger.latest_by_document(tenant)
            done = [u for u in latest.values() if u.marker is not None
                    and services.jobs.get(u.job_id).status.value == "done"]
            if len(done) >= count or time.monotonic() > deadline:
                return sorted(done, key=lambda u: u.accepted_at)[:count]
            time.sleep(0.2)

    # --- plumbing --------------------------------------------------------------------------

    def _tenant(self, name: str) -> Tenant:
        return next(t for t in self.tenants if t.name == name)

    def _accept(self, upload: Upload) -> None:
        with self._lock:
            self.ledger.uploads.append(upload)

    def _call(self, method: str, path: str, *, key: str | None = None,
              accept: tuple[int, ...] = (200, 201, 202), **kwargs: object) -> httpx.Response:
        """An API call, retried through an outage (5xx, a refused connection) for a while.
        An upload whose answer was lost is recorded as unanswered: the checker allows its
        job to exist without having been accepted."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        deadline = time.monotonic() + API_PATIENCE_S
        last = ""
        while time.monotonic() < deadline:
            try:
                answer = self.client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                if method == "POST" and path == "/v1/ingestions":
                    self.ledger.unanswered += 1
            else:
                if answer.status_code in accept:
                    return answer
                last = f"{answer.status_code} {answer.text[:300]}"
                if answer.status_code < 500:
                    break
                self.ledger.api_errors.append(last)
            time.sleep(1.0)
        raise AssertionError(f"{method} {path} did not succeed: {last}")


def wait_all_terminal(stack: ChaosStack, ledger: Ledger, timeout: float,
                      on_wait: Callable[[], None] | None = None) -> bool:
    """Until every accepted job is done or failed (True), or ``timeout`` (False)."""
    jobs = stack.services_cache().jobs
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = []
        for upload in ledger.uploads:
            try:
                status = jobs.get(upload.job_id).status
            except Exception:  # MongoDB down for a moment: ask again
                pending.append(upload.job_id)
                continue
            if not status.is_terminal:
                pending.append(upload.job_id)
        if not pending:
            return True
        if on_wait is not None:
            on_wait()
        time.sleep(0.5)
    return False
