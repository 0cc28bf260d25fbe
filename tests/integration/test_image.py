"""The image runs what compose and Kubernetes ask of it: `conversa --help`, `conversa api` and a
worker, from the files the Dockerfile copies and nothing else (no Docker engine runs here, so
the file set is assembled the way `docker build` assembles it: tests/support/image.py)."""

import subprocess
from pathlib import Path

import httpx
import pytest

from localstack.servers import free_port, log_tail, stop_process, wait_for_port
from tests.support.image import (
    ROOT,
    build_context,
    copy_stage_files,
    image_venv,
    parse_dockerfile,
    runtime_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    _, stages = parse_dockerfile(ROOT / "Dockerfile")
    build, final = stages[0], stages[-1]
    work = tmp_path_factory.mktemp("image")
    context = build_context(work / "context")
    rootfs = work / "rootfs"
    copy_stage_files(build, context, rootfs)
    venv_dir = image_venv(rootfs, build, work / "venv")
    return {"final": final, "venv": venv_dir, "work": work}


def _env(image: dict[str, object], data_dir: Path, **extra: str) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = runtime_env(image["final"], image["venv"], data_dir)  # type: ignore[arg-type]
    env.update(extra)
    return env


def _entrypoint(image: dict[str, object]) -> list[str]:
    final = image["final"]
    venv_dir = image["venv"]
    [program] = final.entrypoint  # type: ignore[attr-defined]
    return [str(Path(venv_dir, "bin", program))]  # type: ignore[arg-type]


def test_the_image_runs_as_a_non_root_user_from_a_pinned_base():
    _, stages = parse_dockerfile(ROOT / "Dockerfile")
    final = stages[-1]
    assert final.user is not None
    assert final.user.split(":")[0] not in {"root", "0"}
    for stage in stages:
        tag = stage.base.partition(":")[2]
        assert tag != "latest", stage.base
        assert any(ch.isdigit() for ch in tag), f"{stage.base} is not pinned by version"
    # Dependencies from the lock, before any code is copied.
    steps = stages[0].steps
    lock_install = next(i for i, (keyword, text) in enumerate(steps)
                        if keyword == "RUN" and "--require-hashes" in text and ".lock" in text)
    first_code = next(i for i, (keyword, text) in enumerate(steps)
                      if keyword == "COPY" and "pyproject.toml" in text)
    assert lock_install < first_code


def test_conversa_help_lists_every_command(image, tmp_path):
    run = subprocess.run([*_entrypoint(image), "--help"], env=_env(image, tmp_path / "data"),
                         cwd=tmp_path / "data", capture_output=True, text=True, timeout=60,
                         check=False)
    assert run.returncode == 0, run.stderr
    for command in ("worker", "api", "metrics", "probe", "flower", "ingest", "search"):
        assert command in run.stdout


def test_conversa_api_serves_from_the_image(image, redis_url, mongo_url, mongo_database_name,
                                            tmp_path):
    data = tmp_path / "data"
    env = _env(image, data, CONVERSA_BROKER_URL=redis_url, CONVERSA_MONGO_URL=mongo_url,
               CONVERSA_MONGO_DATABASE=mongo_database_name)
    port = free_port()
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*_entrypoint(image), "api", "--host", "127.0.0.1", "--port",
                                 str(port)], env=env, cwd=data, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, 60, log_path=log_path)
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert answer.status_code == 200, log_tail(log_path)
        assert answer.json() == {"status": "ok"}
    finally:
        stop_process(proc, timeout=30)
    assert b"Traceback" not in log_path.read_bytes()


def test_a_worker_from_the_image_consumes_and_passes_its_probe(image, redis_url, mongo_url,
                                                               mongo_database_name, tmp_path):
    data = tmp_path / "data"
    env = _env(image, data, CONVERSA_BROKER_URL=redis_url, CONVERSA_MONGO_URL=mongo_url,
               CONVERSA_MONGO_DATABASE=mongo_database_name)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*_entrypoint(image), "worker", "-Q", "record", "-c", "1",
                                 "-n", "record@image-test"], env=env, cwd=data, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        probe = None
        for _ in range(120):
            if proc.poll() is not None:
                raise AssertionError(f"worker exited {proc.returncode}:\n{log_tail(log_path)}")
            probe = subprocess.run([*_entrypoint(image), "probe", "-n", "record@image-test"],
                                   env=env, cwd=data, capture_output=True, text=True,
                                   timeout=60, check=False)
            if probe.returncode == 0:
                break
            subprocess.run(["sleep", "0.5"], check=True)
        assert probe is not None
        assert probe.returncode == 0, (probe, log_tail(log_path))
        assert "record@image-test: consuming" in probe.stdout
    finally:
        stop_process(proc, timeout=30)
    assert b"Traceback" not in log_path.read_bytes()
