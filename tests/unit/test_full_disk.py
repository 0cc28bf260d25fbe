"""A full disk is a passing condition: the stage that met it is tried again with backoff, and
the job fails with the reason only once its retries are spent."""

import errno
import os
from collections.abc import Sequence
from pathlib import Path

from adapters.memory.fakes import MemoryVectorIndex
from domain.documents import VectorRecord
from domain.status import JobStatus, Stage
from pipeline.producer import enqueue, file_event
from pipeline.search import search
from tests.support.inline import memory_services

TEXT = "The lighthouse keeper trimmed the lamp before the storm reached the harbour. " * 20


class FillingDiskIndex(MemoryVectorIndex):
    """A local index whose disk is full for its first ``full_for`` writes, as a LanceDB
    folder on a full data disk is."""

    def __init__(self, full_for: int) -> None:
        super().__init__()
        self.full_for = full_for
        self.refused = 0

    def upsert_vector(self, tenant: str, vectors: Sequence[VectorRecord]) -> None:
        if self.refused < self.full_for:
            self.refused += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super().upsert_vector(tenant, vectors)


def ingest(tmp_path: Path, index: FillingDiskIndex):
    services = memory_services(tmp_path)
    services.vectors = index  # the one adapter this test swaps: a disk that fills
    path = tmp_path / "lighthouse.txt"
    path.write_text(TEXT)
    job = enqueue(services, file_event(path, "default", services.settings.max_upload_bytes))
    return services, services.jobs.get(job.job_id)


def test_a_disk_that_fills_and_frees_again_delays_the_job_but_does_not_fail_it(tmp_path):
    index = FillingDiskIndex(full_for=2)  # the inline runner tries each stage 3 times
    services, job = ingest(tmp_path, index)
    assert index.refused == 2
    assert job.status is JobStatus.DONE
    assert search(services, "default", "lighthouse keeper storm")[0].document_id == \
        job.document_id


def test_a_disk_that_stays_full_fails_the_job_with_the_reason(tmp_path):
    index = FillingDiskIndex(full_for=100)
    _, job = ingest(tmp_path, index)
    assert index.refused == 3
    assert job.status is JobStatus.FAILED
    assert job.failed_stage is Stage.INDEX
    assert job.error is not None
    assert "no space left for the index stage" in job.error.message
