"""docker-compose.yml, .env.example and the Dockerfile, checked against the code's own
declarations (no Docker engine runs here, so the files are parsed and cross-checked)."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
            stage = command[command.index("-Q") + 1]
            assert command[command.index("-n") + 1] == f"{stage}@%h"
            assert service["stop_grace_period"]
            assert service["healthcheck"]["test"][:3] == ["CMD", "conversa", "probe"]
    assert sorted(consumed) == sorted(ALL_QUEUES)


def test_every_image_is_pinned_by_version(compose):
    for name, service in compose["services"].items():
        tag = str(service["image"]).rpartition(":")[2]
        assert tag != "latest", name
        assert any(ch.isdigit() for ch in tag), f"{name}: {service['image']} is not pinned"


def test_the_s3_server_shares_our_keys_and_sse_is_off_by_default(compose):
    pairs = env_example()
    s3 = compose["services"]["s3"]
    assert s3["environment"]["AWS_ACCESS_KEY_ID"].startswith("${CONVERSA_S3__ACCESS_KEY_ID")
    assert s3["environment"]["AWS_SECRET_ACCESS_KEY"].startswith(
        "${CONVERSA_S3__SECRET_ACCESS_KEY")
    assert pairs["CONVERSA_S3__ENDPOINT_URL"].startswith("http://s3:")
    assert pairs["CONVERSA_S3__CREATE_BUCKET"] == "true"
    assert "CONVERSA_S3__SSE" not in pairs
    for name, service in compose["services"].items():
        if service.get("env_file"):
            assert service["depends_on"]["s3"]["condition"] == "service_healthy", name


def test_flower_takes_its_login_from_our_setting_and_ports_stay_on_loopback(compose):
    pairs = env_example()
    assert not [name for name in pairs if name.startswith("FLOWER_")]
    assert ":" in pairs["CONVERSA_FLOWER__BASIC_AUTH"]
    assert pairs["CONVERSA_LOG_FORMAT"] == "json"
    for name in ("api", "metrics", "flower"):
        for port in compose["services"][name]["ports"]:
            assert port.startswith("127.0.0.1:"), (name, port)


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
    assert settings.s3.sse is None
    assert settings.vector_index == "pinecone"
    assert settings.embedder == "openai"
    assert settings.flower.basic_auth is not None
    assert settings.log_format == "json"


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

    def variables(model: Any, prefix: str) -> Iterator[str]:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                yield from variables(annotation, f"{prefix}{name.upper()}__")
            else:
                yield f"{prefix}{name.upper()}"

    for variable in variables(Settings, "CONVERSA_"):
        assert variable in documented, variable


def test_the_image_copies_every_package_the_project_installs():
    import tomllib

    dockerfile = (ROOT / "Dockerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        package = pattern.rstrip("*")
        assert f"COPY {package} ./{package}" in dockerfile, package
        assert f"!{package}/" in (ROOT / ".dockerignore").read_text(), package
    assert 'ENTRYPOINT ["conversa"]' in dockerfile
