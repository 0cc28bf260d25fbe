"""`conversa doctor`: one round trip to every server and model the pipeline needs, one line
per check with its verdict. Nothing is left behind (the object store's probe is deleted)."""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from pipeline.bootstrap import bootstrap
from pipeline.settings import Settings, process_settings, redact_url

PROBE_TEXT = "Lighthouse keepers polished the lenses every night before the storm."
PROBE_TENANT = "_doctor"


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float

    def line(self) -> str:
        verdict = "ok  " if self.ok else "FAIL"
        return f"{verdict}  {self.name:<10} {self.detail} ({self.seconds * 1000:.0f} ms)"


def _broker(settings: Settings, _: Any) -> str:
    url = settings.require_broker_url()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from adapters.redis.queues import broker_client

        client = broker_client(url)
        try:
            client.ping()
        finally:
            client.close()
    else:
        from kombu import Connection

        with Connection(url, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1, timeout=5)
    return f"reached {redact_url(url)}"


def _mongodb(settings: Settings, services: Any) -> str:
    services.jobs.list_jobs(limit=1)
    return f"reached {redact_url(settings.require_mongo_url())}, database {settings.mongo_database}"


def _object_store(settings: Settings, services: Any) -> str:
    key = f"{PROBE_TENANT}/probe-{uuid.uuid4().hex}"
    data = b"conversa doctor probe"
    try:
        services.objects.put_bytes(key, data, {})
        if services.objects.get_bytes(key) != data:
            raise RuntimeError("read back different bytes than written")
    finally:
        services.objects.delete_file(key)
    return f"{settings.object_store}: wrote, read and deleted a probe object"


def _vector_index(settings: Settings, services: Any) -> str:
    from adapters.ports import DimensionChecked

    if isinstance(services.vectors, DimensionChecked):
        services.vectors.check_dimension()
    services.vectors.count(PROBE_TENANT)
    return f"{settings.vector_index}: reachable"


def _embedder(settings: Settings, services: Any) -> str:
    [vector] = services.embedder.generate_embeddings([PROBE_TEXT])
    if len(vector) != services.embedder.dimension:
        raise RuntimeError(f"a {len(vector)}-dimensional vector from a model declared "
                           f"{services.embedder.dimension}")
    return f"{settings.embedder}: {services.embedder.model_name}, {len(vector)} dimensions"


def _keywords(settings: Settings, services: Any) -> str:
    found = services.keywords.generate_keywords(PROBE_TEXT, max_keywords=3)
    if not found:
        raise RuntimeError("no keywords for a plain English sentence")
    return f"{settings.keywords}: {len(found)} keywords for a probe sentence"


CHECKS: list[tuple[str, Callable[[Settings, Any], str]]] = [
    ("broker", _broker),
    ("mongodb", _mongodb),
    ("objects", _object_store),
    ("vectors", _vector_index),
    ("embedder", _embedder),
    ("keywords", _keywords),
]


def _timed(name: str, check: Callable[[], str]) -> CheckResult:
    start = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # every failure is a verdict, never a traceback
        detail = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        ok = False
    return CheckResult(name, ok, detail, time.perf_counter() - start)


def run_checks() -> list[CheckResult]:
    """Settings first; without valid settings (or wiring) the other checks are skipped."""
    loaded: list[Settings] = []
    results = [_timed("settings", partial(_load, loaded))]
    if not loaded:
        return results + [CheckResult(name, False, "skipped: settings are invalid", 0.0)
                          for name, _ in CHECKS]
    settings = loaded[0]
    try:
        services: Any = bootstrap(settings)  # its probes are not counted in the metrics
    except Exception as exc:
        services, reason = None, f"skipped: cannot wire the adapters: {exc}"
    for name, check in CHECKS:
        if services is None and name != "broker":
            results.append(CheckResult(name, False, reason, 0.0))
        else:
            results.append(_timed(name, partial(check, settings, services)))
    return results


def _load(into: list[Settings]) -> str:
    settings = process_settings()
    into.append(settings)
    return (f"object store {settings.object_store}, vectors {settings.vector_index}, "
            f"embedder {settings.embedder}, keywords {settings.keywords}")
