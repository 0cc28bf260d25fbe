"""Settings: one typed tree from CONVERSA_* variables, one-line errors, factories per backend."""

import pytest

from adapters import factory
from domain.errors import ConfigurationError
from pipeline.settings import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    import os

    for name in list(os.environ):
        if name.startswith("CONVERSA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CONVERSA_DATA_DIR", str(tmp_path))


def test_nested_settings_come_from_double_underscore_variables(monkeypatch):
    monkeypatch.setenv("CONVERSA_WORKER__MAX_RETRIES", "7")
    monkeypatch.setenv("CONVERSA_S3__BUCKET", "uploads")
    monkeypatch.setenv("CONVERSA_OBJECT_STORE", "s3")

    settings = load_settings()

    assert settings.worker.max_retries == 7
    assert settings.s3.bucket == "uploads"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"CONVERSA_OBJECT_STORE": "s3"}, "CONVERSA_S3__BUCKET is required"),
        ({"CONVERSA_VECTOR_INDEX": "pinecone", "CONVERSA_PINECONE__API_KEY": "k"},
         "CONVERSA_PINECONE__HOST is required"),
        ({"CONVERSA_EMBEDDER": "openai"}, "CONVERSA_OPENAI__API_KEY is required"),
        ({"CONVERSA_OBJECT_STORE": "ftp"}, "CONVERSA_OBJECT_STORE:"),
        ({"CONVERSA_WORKER__TIME_LIMIT": "10", "CONVERSA_WORKER__SOFT_TIME_LIMIT": "20"},
         "CONVERSA_WORKER__SOFT_TIME_LIMIT must be below CONVERSA_WORKER__TIME_LIMIT"),
        ({"CONVERSA_WORKER__VISIBILITY_TIMEOUT": "100"},
         "CONVERSA_WORKER__VISIBILITY_TIMEOUT must exceed CONVERSA_WORKER__TIME_LIMIT"),
        ({"CONVERSA_MAX_UPLOAD_BYTES": "lots"}, "CONVERSA_MAX_UPLOAD_BYTES:"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_it(monkeypatch, variables, message):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ConfigurationError) as caught:
        load_settings()

    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_secrets_never_show_in_the_settings_repr(monkeypatch):
    monkeypatch.setenv("CONVERSA_OPENAI__API_KEY", "sk-sentinel-123456")
    monkeypatch.setenv("CONVERSA_S3__SECRET_ACCESS_KEY", "aws-sentinel-654321")

    settings = load_settings()

    assert "sentinel" not in repr(settings)
    assert "sentinel" not in settings.model_dump_json()


def test_missing_broker_names_the_setting_and_the_way_out():
    with pytest.raises(ConfigurationError, match=r"CONVERSA_BROKER_URL is not set.*conversa up"):
        load_settings().require_broker_url()


def test_the_local_stack_file_supplies_the_addresses(tmp_path):
    (tmp_path / "stack.json").write_text(
        '{"broker_url": "redis://127.0.0.1:1/0", "mongo_url": "mongodb://127.0.0.1:2/"}')
    settings = load_settings()
    assert settings.require_broker_url() == "redis://127.0.0.1:1/0"
    assert settings.require_mongo_url() == "mongodb://127.0.0.1:2/"


def test_factories_build_the_production_adapters_from_settings_alone(monkeypatch):
    from adapters.openai.embedder import OpenAIEmbedder
    from adapters.openai.keywords import OpenAIKeywords
    from adapters.pinecone.vector_index import PineconeVectorIndex
    from adapters.s3.object_store import S3ObjectStore

    for name, value in {
        "CONVERSA_OBJECT_STORE": "s3", "CONVERSA_S3__BUCKET": "b",
        "CONVERSA_VECTOR_INDEX": "pinecone", "CONVERSA_PINECONE__API_KEY": "pk",
        "CONVERSA_PINECONE__HOST": "http://127.0.0.1:9", "CONVERSA_EMBEDDER": "openai",
        "CONVERSA_KEYWORDS": "openai", "CONVERSA_OPENAI__API_KEY": "ok",
        "CONVERSA_OPENAI__EMBEDDING_REQUESTS_PER_MINUTE": "0",
        "CONVERSA_OPENAI__EMBEDDING_TOKENS_PER_MINUTE": "0",
        "CONVERSA_OPENAI__KEYWORDS_REQUESTS_PER_MINUTE": "0",
        "CONVERSA_OPENAI__KEYWORDS_TOKENS_PER_MINUTE": "0",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()

    assert isinstance(factory.s3_repository(settings), S3ObjectStore)
    assert isinstance(factory.pinecone_repository(settings), PineconeVectorIndex)
    assert isinstance(factory.embedder(settings), OpenAIEmbedder)
    assert isinstance(factory.keyword_extractor(settings), OpenAIKeywords)
    assert factory.embedder(settings).dimension == 1536


def test_factories_build_the_local_adapters_by_default(tmp_path):
    from adapters.filesystem.object_store import FilesystemObjectStore
    from adapters.lancedb.vector_index import LanceDBVectorIndex
    from adapters.onnx.embedder import OnnxEmbedder
    from adapters.yake.keywords import YakeKeywords

    settings = load_settings()

    assert isinstance(factory.object_store(settings), FilesystemObjectStore)
    assert isinstance(factory.vector_index(settings, 384), LanceDBVectorIndex)
    assert isinstance(factory.embedder(settings), OnnxEmbedder)
    assert isinstance(factory.keyword_extractor(settings), YakeKeywords)
    assert not (tmp_path / "objects").exists()  # lazy: nothing touched at construction


def test_the_reconciler_timing_follows_from_the_worker_limits(monkeypatch):
    defaults = load_settings()
    timing = defaults.reconciler()
    # stuck after a task's hard limit plus the longest countdown; back within the timeout
    assert timing.stuck_after_seconds == 300 + 60
    assert timing.recovery_bound_seconds == defaults.worker.visibility_timeout == 420

    monkeypatch.setenv("CONVERSA_WORKER__TIME_LIMIT", "45")
    monkeypatch.setenv("CONVERSA_WORKER__SOFT_TIME_LIMIT", "40")
    monkeypatch.setenv("CONVERSA_WORKER__RETRY_BACKOFF_MAX", "2")
    monkeypatch.setenv("CONVERSA_WORKER__VISIBILITY_TIMEOUT", "50")
    fast = load_settings().reconciler()
    assert (fast.stuck_after_seconds, fast.every_seconds) == (47, 3)

    monkeypatch.setenv("CONVERSA_MAINTENANCE__STUCK_AFTER_SECONDS", "1200")
    monkeypatch.setenv("CONVERSA_MAINTENANCE__RECONCILE_EVERY_SECONDS", "30")
    chosen = load_settings().reconciler()
    assert (chosen.stuck_after_seconds, chosen.every_seconds) == (1200, 30)
