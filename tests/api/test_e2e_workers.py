"""Upload over HTTP while real Celery workers run, then search: the same hits as the CLI,
and nothing of one user's reaches another's."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.api.conftest import Api, bearer
from tests.support.workers import celery_worker

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
QUERY = "how do I keep a sourdough starter alive"


def wait_done(api: Api, key: str, job_ids: list[str], timeout: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [api.client.get(f"/v1/ingestions/{job_id}", headers=bearer(key)).json()
                for job_id in job_ids]
        if all(job["status"] in ("done", "failed") for job in jobs):
            return jobs
        time.sleep(0.3)
    raise AssertionError(f"jobs not finished after {timeout} s")


def cli_search(env: dict[str, str], tenant: str, query: str, top_k: int) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "cli", "search", query, "--tenant", tenant,
                           "--top-k", str(top_k), "--json"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_upload_over_http_with_workers_then_search_like_the_cli(api: Api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a_key, a_tenant = api.signup("ann@example.com")
    b_key, _ = api.signup("bob@example.com")
    files = sorted(SAMPLES.iterdir())
    with celery_worker(api.env, tmp_path / "worker.log", concurrency=2):
        accepted = []
        for path in files:
            with path.open("rb") as handle:
                answer = api.client.post("/v1/ingestions", headers=bearer(a_key),
                                         files={"file": (path.name, handle, "text/plain")})
            assert answer.status_code == 202, answer.text
            accepted.append(answer.json())
        jobs = wait_done(api, a_key, [job["job_id"] for job in accepted])
    assert [job["status"] for job in jobs] == ["done"] * len(files)
    assert all(job["chunk_count"] for job in jobs)
    assert not any(key.split("/")[1] == "incoming"
                   for key in _object_keys(api, a_tenant))  # staged copies were moved

    over_http = api.client.post("/v1/search", headers=bearer(a_key),
                                json={"query": QUERY, "top_k": 3}).json()["hits"]
    assert over_http == cli_search(api.env, a_tenant, QUERY, 3)
    assert "sourdough" in over_http[0]["text"].lower() or "bread" in over_http[0]["source"]

    # B sees none of it
    assert api.client.post("/v1/search", headers=bearer(b_key),
                           json={"query": QUERY}).json() == {"hits": []}
    top = over_http[0]["document_id"]
    assert api.client.delete(f"/v1/documents/{top}", headers=bearer(b_key)).status_code == 404
    assert api.client.get(f"/v1/ingestions/{jobs[0]['job_id']}", headers=bearer(b_key)
                          ).status_code == 404

    deleted = api.client.delete(f"/v1/documents/{top}", headers=bearer(a_key))
    assert deleted.json() == {"document_id": top, "deleted": True}
    after = api.client.post("/v1/search", headers=bearer(a_key),
                            json={"query": QUERY, "top_k": 10}).json()["hits"]
    assert top not in {hit["document_id"] for hit in after}
    assert after


def _object_keys(api: Api, tenant: str) -> list[str]:
    root = api.services.settings.objects_dir
    return [str(p.relative_to(root)) for p in (root / tenant).rglob("*") if p.is_file()]
