"""Found by the chaos suite (MongoDB killed while uploads arrive): bytes an upload staged under
``<tenant>/incoming/`` stayed forever when the job could not be recorded, since the client got
an error and uploaded again. The API unstages them (``pipeline.uploads.unstage``); the CLI's
``enqueue_staged`` does the same, and keeps them when the job was recorded and only its
dispatch failed."""

from pathlib import Path

import pytest

from adapters.memory.fakes import MemoryDocumentRepository, MemoryJobRepository, MemoryObjectStore
from domain.errors import TransientError
from domain.status import JobStatus, Stage
from localstack.servers import free_port
from pipeline.bootstrap import bootstrap
from pipeline.settings import Settings
from pipeline.uploads import enqueue_staged, staged_upload_event

pytestmark = pytest.mark.integration

TEXT = b"Harbour pilots read the tide tables before every crossing. " * 20


class BrokerDown:
    """A dispatcher whose broker is unreachable."""

    def dispatch(self, job_id: str, stage: Stage, lane: int = 0) -> None:
        raise TransientError("cannot reach the broker")


def _upload(tmp_path: Path) -> Path:
    path = tmp_path / "tides.md"
    path.write_bytes(TEXT)
    return path


def test_no_staged_bytes_stay_when_mongodb_is_down(tmp_path: Path) -> None:
    # Nothing listens on the port: every MongoDB call fails, as while the server restarts.
    settings = Settings(data_dir=tmp_path / "data", mongo_timeout_ms=300,
                        mongo_url=f"mongodb://127.0.0.1:{free_port()}/?directConnection=true")
    objects = MemoryObjectStore()
    services = bootstrap(settings, objects=objects, dispatcher=BrokerDown())
    event = staged_upload_event(services, "acme", _upload(tmp_path), "tides.md")
    assert objects.list_keys() == [event.source_uri.removeprefix("object:")]

    with pytest.raises(TransientError):
        enqueue_staged(services, event)

    assert objects.list_keys() == []


def test_a_recorded_job_keeps_its_bytes_when_only_the_dispatch_failed(tmp_path: Path) -> None:
    objects, jobs = MemoryObjectStore(), MemoryJobRepository()
    services = bootstrap(Settings(data_dir=tmp_path / "data"), objects=objects, jobs=jobs,
                         documents=MemoryDocumentRepository(), dispatcher=BrokerDown())
    event = staged_upload_event(services, "acme", _upload(tmp_path), "tides.md")

    with pytest.raises(TransientError):
        enqueue_staged(services, event)

    [job] = jobs.list_jobs()
    assert job.status is JobStatus.QUEUED  # the reconciler dispatches it later
    assert objects.list_keys() == [event.source_uri.removeprefix("object:")]
