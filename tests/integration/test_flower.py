"""Flower after a real run: every worker and all five stage tasks, under readable names with
id-only arguments, behind basic auth; seen by headless Chromium, with a screenshot saved."""

import base64
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from adapters.celery.topology import STAGE_QUEUES
from domain.status import Stage
from localstack.servers import free_port, spawn, stop_process, wait_for_port
from pipeline.producer import enqueue, file_event
from tests.support.workers import celery_worker, producer, wait_for, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "flower"
LOGIN = "admin:flower-test-password"
SECRET = "sk-sentinel-secret-4242"
SENTENCE = "The heron counts seventeen quiet lanterns."
STAGE_TASKS = {STAGE_QUEUES[stage].task_name for stage in Stage}


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is needed for this test (.ci/run installs it)"
    return found


def get(url: str, login: str | None = LOGIN) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if login:
        request.add_header("Authorization", "Basic " + base64.b64encode(login.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def browse(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--window-size=1400,900",
         "--virtual-time-budget=8000", *extra, url],
        capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def env(env):
    """The workers' environment, with Flower's login and a sentinel secret in the settings."""
    return {**env, "CONVERSA_FLOWER__BASIC_AUTH": LOGIN, "CONVERSA_PINECONE__API_KEY": SECRET}


@contextmanager
def flower_server(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`conversa flower` on a free port until the block ends; yields its base URL."""
    port = free_port()
    flower = spawn([sys.executable, "-m", "cli", "flower", "--port", str(port)], log_path,
                   env)
    try:
        wait_for_port("127.0.0.1", port, 60, flower, log_path=log_path)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(flower)


def test_flower_lists_the_workers_and_every_stage_task(env, tmp_path):
    services, _ = producer(env)
    with flower_server(env, tmp_path / "flower.log") as base:
        document = tmp_path / "lanterns.txt"
        document.write_text(f"{SENTENCE} " * 80)
        with celery_worker(env, tmp_path / "worker.log", name="flowertest"):
            [job] = wait_terminal(services, [enqueue(
                services, file_event(document, "default", 10**8)).job_id])

            def all_stages_seen() -> dict | None:
                status, body = get(f"{base}/api/tasks")
                tasks = json.loads(body) if status == 200 else {}
                done = {t["name"] for t in tasks.values() if t.get("state") == "SUCCESS"}
                return tasks if done >= STAGE_TASKS else None

            tasks = wait_for(all_stages_seen, 60, "Flower to see all five stage tasks")
            OUTPUT.mkdir(parents=True, exist_ok=True)
            auth_base = base.replace("http://", f"http://{LOGIN}@")
            shot = browse(f"{auth_base}/tasks", tmp_path / "profile1",
                          f"--screenshot={OUTPUT / 'flower-tasks.png'}")
            tasks_dom = browse(f"{auth_base}/tasks", tmp_path / "profile2", "--dump-dom")
            workers_dom = browse(f"{auth_base}/workers", tmp_path / "profile3", "--dump-dom")

    assert job.status.value == "done"
    stage_tasks = [t for t in tasks.values() if t["name"] in STAGE_TASKS]
    assert all(t["args"] in (f"('{job.job_id}',)", f"['{job.job_id}']") for t in stage_tasks)
    flower_view = json.dumps(tasks)
    assert SECRET not in flower_view
    assert "heron" not in flower_view

    assert shot.returncode == 0, shot.stderr[-2000:]
    assert (OUTPUT / "flower-tasks.png").stat().st_size > 10_000
    for name in STAGE_TASKS:
        assert name in tasks_dom.stdout, name
    assert "flowertest@" in workers_dom.stdout


def test_flower_needs_the_login_and_refuses_other_addresses_without_one(env, tmp_path):
    with flower_server(env, tmp_path / "flower.log") as base:
        assert get(f"{base}/api/workers", login=None)[0] == 401
        assert get(f"{base}/tasks", login=None)[0] == 401
        assert get(f"{base}/api/workers", login="admin:wrong")[0] == 401
        assert get(f"{base}/api/workers")[0] == 200

    no_login = {k: v for k, v in env.items() if k != "CONVERSA_FLOWER__BASIC_AUTH"}
    refused = subprocess.run(
        [sys.executable, "-m", "cli", "flower", "--address", "0.0.0.0",
         "--port", str(free_port())], env=no_login, capture_output=True, text=True, timeout=60,
        check=False)
    assert refused.returncode == 1
    assert "CONVERSA_FLOWER__BASIC_AUTH" in refused.stderr
