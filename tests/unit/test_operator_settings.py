"""Configuration as operators expect it: a .env file, the log format as a setting, URLs with
passwords kept secret, unknown CONVERSA_* variables reported with the nearest name, and every
error naming the variable."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from domain.errors import ConfigurationError
from pipeline.settings import load_settings, redact_url, unknown_variables, variable_names

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-sentinel-8841"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("CONVERSA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVERSA_DATA_DIR", str(tmp_path / "data"))


def test_a_dot_env_file_in_the_working_folder_is_read_and_the_environment_wins(
        monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("# operator's file\nCONVERSA_MONGO_DATABASE=from_file\n"
                                   "CONVERSA_WORKER__MAX_RETRIES=9\nOTHER_TOOL=x\n")
    monkeypatch.setenv("CONVERSA_WORKER__MAX_RETRIES", "3")

    settings = load_settings()

    assert settings.mongo_database == "from_file"
    assert settings.worker.max_retries == 3


def test_the_log_format_is_a_setting(monkeypatch):
    assert load_settings().log_format == "text"
    monkeypatch.setenv("CONVERSA_LOG_FORMAT", "json")
    assert load_settings().log_format == "json"
    monkeypatch.setenv("CONVERSA_LOG_FORMAT", "xml")
    with pytest.raises(ConfigurationError, match=r"^CONVERSA_LOG_FORMAT: "):
        load_settings()


@pytest.mark.parametrize("variable", ["CONVERSA_BROKER_URL", "CONVERSA_RESULT_BACKEND",
                                      "CONVERSA_MONGO_URL",
                                      "CONVERSA_OPENAI__RATE_LIMIT_REDIS_URL"])
def test_urls_that_carry_passwords_are_secrets(monkeypatch, variable):
    url = f"redis://ops:{PASSWORD}@broker.internal:6379/0"
    monkeypatch.setenv(variable, url)

    settings = load_settings()

    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert PASSWORD not in settings.model_dump_json()
    if variable == "CONVERSA_BROKER_URL":
        assert settings.require_broker_url() == url
        assert settings.require_result_backend() == url
    if variable == "CONVERSA_MONGO_URL":
        assert settings.require_mongo_url() == url


def test_redacted_urls_keep_everything_but_the_password():
    assert redact_url(f"amqp://ops:{PASSWORD}@mq:5672/prod") == "amqp://ops:***@mq:5672/prod"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert PASSWORD not in redact_url(f"mongodb://u:{PASSWORD}@a,b/?replicaSet=r")


def test_an_unknown_variable_is_reported_with_the_nearest_name(monkeypatch, caplog):
    monkeypatch.setenv("CONVERSA_S3__BUKET", "uploads")
    monkeypatch.setenv("CONVERSA_WORKER__CONCURENCY", "4")

    with caplog.at_level(logging.WARNING, logger="pipeline.settings"):
        load_settings()

    messages = [record.getMessage() for record in caplog.records]
    assert ("CONVERSA_S3__BUKET is not a ConverSA setting and is ignored; did you mean "
            "CONVERSA_S3__BUCKET?") in messages
    assert any("CONVERSA_WORKER__CONCURENCY" in m and "CONVERSA_WORKER__CONCURRENCY" in m
               for m in messages)


def test_unknown_names_in_the_dot_env_file_are_reported_too(tmp_path, caplog):
    (tmp_path / ".env").write_text("CONVERSA_OPENAI__EMBEDING_DIMENSION=3072\n")
    with caplog.at_level(logging.WARNING, logger="pipeline.settings"):
        load_settings()
    assert any("CONVERSA_OPENAI__EMBEDING_DIMENSION" in r.getMessage()
               and "CONVERSA_OPENAI__EMBEDDING_DIMENSION" in r.getMessage()
               for r in caplog.records)


def test_known_names_and_kubernetes_service_links_are_not_reported():
    names = [*variable_names(), "CONVERSA_METRICS_SERVICE_HOST", "CONVERSA_METRICS_PORT",
             "CONVERSA_METRICS_PORT_9464_TCP_ADDR", "PATH"]
    assert unknown_variables(names) == []
    assert unknown_variables(["CONVERSA_ZZZ"]) == [("CONVERSA_ZZZ", None)]


def test_every_error_names_its_variable_never_the_dotted_field(monkeypatch):
    monkeypatch.setenv("CONVERSA_WORKER__TIME_LIMIT", "10")
    monkeypatch.setenv("CONVERSA_WORKER__SOFT_TIME_LIMIT", "20")
    monkeypatch.setenv("CONVERSA_CHUNKING__SIZE_TOKENS", "100")
    monkeypatch.setenv("CONVERSA_CHUNKING__OVERLAP_TOKENS", "80")
    monkeypatch.setenv("CONVERSA_MAX_UPLOAD_BYTES", "lots")

    with pytest.raises(ConfigurationError) as caught:
        load_settings()

    message = str(caught.value)
    assert "\n" not in message
    assert "CONVERSA_WORKER__SOFT_TIME_LIMIT must be below CONVERSA_WORKER__TIME_LIMIT" in message
    assert "CONVERSA_CHUNKING__OVERLAP_TOKENS must be at most half" in message
    assert "CONVERSA_MAX_UPLOAD_BYTES: " in message
    for dotted in ("worker.", "chunking.", "soft_time_limit must"):
        assert dotted not in message


def test_the_cli_reports_an_unknown_variable_on_stderr(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONVERSA_")}
    env.update({"CONVERSA_DATA_DIR": str(tmp_path / "data"), "CONVERSA_BROKR_URL": "x"})
    run = subprocess.run([sys.executable, "-m", "cli", "queues"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1
    assert "CONVERSA_BROKR_URL is not a ConverSA setting" in run.stderr
    assert "did you mean CONVERSA_BROKER_URL?" in run.stderr
    assert "CONVERSA_BROKER_URL is not set" in run.stderr


def test_nested_sections_at_any_depth_are_known():
    names = variable_names()
    assert "CONVERSA_API__LIMITS__WINDOW_SECONDS" in names
    assert unknown_variables(["CONVERSA_API__LIMITS__WINDOW_SECONDS"]) == []
