"""Skipped search candidates are counted in Redis and exported by `conversa metrics`."""

import pytest
import redis
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from adapters import factory
from adapters.redis.search_metrics import SEARCH_SKIPPED_KEY, RedisSearchMetrics
from cli.metrics import registry_for
from localstack.servers import free_port
from tests.support.workers import settings_from

pytestmark = [pytest.mark.integration]


def test_skipped_candidates_reach_the_exporter(env):
    # Built as every process builds it: from settings, whose broker URL is a secret.
    metrics = factory.search_metrics(settings_from(env))
    for reason in ("chunks_unreadable", "chunks_unreadable", "chunk_missing"):
        metrics.skipped_candidate(reason)
    assert redis.Redis.from_url(env["CONVERSA_BROKER_URL"]).hgetall(SEARCH_SKIPPED_KEY) == {
        b"chunks_unreadable": b"2", b"chunk_missing": b"1"}

    text = generate_latest(registry_for(settings_from(env))).decode()
    samples = {(s.name, s.labels.get("reason")): s.value
               for family in text_string_to_metric_families(text) for s in family.samples
               if s.name.startswith("conversa_search_skipped")}
    assert samples == {("conversa_search_skipped_candidates_total", "chunks_unreadable"): 2.0,
                       ("conversa_search_skipped_candidates_total", "chunk_missing"): 1.0}


def test_a_broker_that_is_down_loses_the_figure_not_the_search():
    metrics = RedisSearchMetrics(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    metrics.skipped_candidate("chunks_unreadable")  # logged, never raised
