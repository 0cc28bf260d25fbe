"""docker-compose.yml, .env.example and the Dockerfile, checked against the code's own
declarations (no Docker engine runs here, so the files are parsed and cross-checked)."""

import re
from pathlib import Path

import pytest
import yaml

from adapters.celery.topology import ALL_QUEUES, resolve_queues
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def test_every_service_has_a_healthcheck_or_is_a_one_shot(compose):
    for name, service in compose["services"].items():
        assert "healthcheck" in service, name
        assert service["healthcheck"]["test"], name


def test_every_reference_points_at_something_defined(compose):
    services = compose["services"]
    volumes = set(compose.get("volumes", {}))
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            assert source in volumes or source.startswith(("/", ".")), f"{name}: {mount}"
        if "env_file" in service:
            assert service["env_file"] == ".env"


def test_redis_keeps_messages_durably_and_never_evicts(compose):
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_one_worker_service_per_queue_covering_every_queue_once(compose):
    consumed = []
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if command[:1] == ["worker"]:
            queues = resolve_queues(command[command.index("-Q") + 1])
            assert len(queues) == 1, f"{name} consumes {queues}"
            consumed += queues
            assert service["environment"]["WORKER_NAME"] + "@%h" == command[
                command.index("-n") + 1]
            assert service["stop_grace_period"]
    assert sorted(consumed) == sorted(ALL_QUEUES)


def test_the_bucket_is_created_at_start_from_the_same_setting(compose):
    init = compose["services"]["minio-init"]
    assert "CONVERSA_S3__BUCKET" in " ".join(init["command"])
    for name, service in compose["services"].items():
        if name.startswith("worker-"):
            assert service["depends_on"]["minio-init"]["condition"] == \
                "service_completed_successfully"


def test_the_env_example_is_valid_settings(monkeypatch):
    pairs = env_example()
    for name in list(__import__("os").environ):
        if name.startswith("CONVERSA_"):
            monkeypatch.delenv(name)
    for name, value in pairs.items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.object_store == "s3"
    assert settings.s3.bucket == pairs["CONVERSA_S3__BUCKET"]
    assert settings.vector_index == "pinecone"
    assert settings.embedder == "openai"
    assert pairs["MINIO_ROOT_PASSWORD"] == pairs["CONVERSA_S3__SECRET_ACCESS_KEY"]


def test_every_variable_in_the_env_example_is_a_real_setting():
    fields = Settings.model_fields
    for name in env_example():
        if not name.startswith("CONVERSA_"):
            continue
        path = name.removeprefix("CONVERSA_").lower().split("__")
        assert path[0] in fields, name
        if len(path) == 2:
            section = fields[path[0]].annotation
            assert path[1] in section.model_fields, name


def test_the_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`(CONVERSA_[A-Z0-9_]+)`", readme))
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            for inner in annotation.model_fields:
                assert f"CONVERSA_{name.upper()}__{inner.upper()}" in documented, (name, inner)
        else:
            assert f"CONVERSA_{name.upper()}" in documented, name


def test_the_image_installs_the_packages_the_compose_file_runs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("domain", "adapters", "pipeline", "workers", "cli", "localstack"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert 'ENTRYPOINT ["conversa"]' in dockerfile
