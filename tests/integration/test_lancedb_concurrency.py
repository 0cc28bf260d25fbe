"""LanceDBVectorIndex under several writer processes: no duplicate rows, writes seen by readers.

Measured: LanceDB alone lets processes upserting the same ids into a new (or empty) table at the
same moment all insert them, leaving duplicate rows; the adapter's per-table flock must prevent
that. The processes use the spawn start method, like separate worker processes. Starting one
costs ~3 s of CPU (importing lancedb), so one scenario runs once per module and the tests below
check what it left.
"""

import json
import multiprocessing
import os
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import lancedb
import pytest

from adapters.lancedb.vector_index import LanceDBVectorIndex, table_name
from domain.documents import VectorRecord

DIM = 16
TENANT = "acme"
IDS = [f"doc_{n // 10}#{n % 10}" for n in range(200)]
NEW_IDS = [f"new_{n}#0" for n in range(50)]
WRITERS = 3
ROUNDS = 3
TIMEOUT = 120


def _vector(seed: int) -> list[float]:
    values = [float(((seed * 7919 + i * 104729) % 1000) - 500) for i in range(DIM)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


def _records(ids: list[str], writer: int, round_: int) -> list[VectorRecord]:
    return [
        VectorRecord(
            id=vector_id,
            values=_vector(n + writer),
            metadata={"document_id": vector_id.split("#")[0], "chunk_index": n % 10,
                      "writer": writer, "round": round_},
        )
        for n, vector_id in enumerate(ids)
    ]


def _writer(path: str, writer: int, barrier: Barrier, phase1_done: Event, go: Event) -> None:
    index = LanceDBVectorIndex(Path(path), DIM)
    # Phase 1: every writer upserts the same ids at the same moment, starting on no table.
    for round_ in range(ROUNDS):
        records = _records(IDS, writer, round_)
        if writer % 2:
            records.reverse()
        barrier.wait(timeout=TIMEOUT)
        if writer == 0:
            for start in range(0, len(records), 50):  # one writer in several smaller batches
                index.upsert_vector(TENANT, records[start : start + 50])
        else:
            index.upsert_vector(TENANT, records)
    barrier.wait(timeout=TIMEOUT)
    if writer == 0:
        phase1_done.set()
    # Phase 2, once the test has looked: a delete, an update and an insert at the same moment.
    assert go.wait(timeout=TIMEOUT)
    barrier.wait(timeout=TIMEOUT)
    if writer == 0:
        index.delete_ids(TENANT, IDS[:100])
    elif writer == 1:
        index.upsert_vector(TENANT, _records(IDS[100:], 9, 9))
    else:
        index.upsert_vector(TENANT, _records(NEW_IDS, 7, 7))


def _reader(path: str, stop: Event, results: Any) -> None:
    index = LanceDBVectorIndex(Path(path), DIM)
    counts: list[int] = []
    hit_counts: list[int] = []
    while not stop.is_set():
        counts.append(index.count(TENANT))
        hits = index.semantic_search(TENANT, _vector(3), top_k=1000)
        hit_counts.append(len(hits))
        time.sleep(0.005)
    results.put((max(counts, default=0), max(hit_counts, default=0), len(counts)))


@dataclass
class Scenario:
    path: Path
    count_before: int
    count_after_phase1: int
    table_rows_after_phase1: int
    table_ids_after_phase1: list[str]
    rounds_after_phase1: set[int]
    reader_max_count: int
    reader_max_hits: int
    reader_samples: int
    exit_codes: list[int | None]
    open_reader: LanceDBVectorIndex


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    path = tmp_path_factory.mktemp("lancedb") / "vectors"
    ctx = multiprocessing.get_context("spawn")
    open_reader = LanceDBVectorIndex(path, DIM)  # stays open through everything below
    count_before = open_reader.count(TENANT)

    barrier = ctx.Barrier(WRITERS)
    phase1_done, go, stop = ctx.Event(), ctx.Event(), ctx.Event()
    results = ctx.Queue()
    reading = ctx.Process(target=_reader, args=(str(path), stop, results))
    writers = [ctx.Process(target=_writer, args=(str(path), n, barrier, phase1_done, go))
               for n in range(WRITERS)]
    reading.start()
    for process in writers:
        process.start()
    try:
        assert phase1_done.wait(timeout=TIMEOUT), "the writers did not finish phase 1"
        count_after_phase1 = open_reader.count(TENANT)
        table = lancedb.connect(path).open_table(table_name(TENANT))
        rows_after_phase1 = table.count_rows()
        rows = table.to_arrow()
        ids_after_phase1 = rows.column("id").to_pylist()
        rounds_after_phase1 = {json.loads(m)["round"]
                               for m in rows.column("metadata_json").to_pylist()}
        go.set()
        for process in writers:
            process.join(timeout=TIMEOUT)
        stop.set()
        max_count, max_hits, samples = results.get(timeout=TIMEOUT)
        reading.join(timeout=TIMEOUT)
    finally:
        for process in [*writers, reading]:
            if process.is_alive():
                process.kill()
    return Scenario(
        path=path,
        count_before=count_before,
        count_after_phase1=count_after_phase1,
        table_rows_after_phase1=rows_after_phase1,
        table_ids_after_phase1=ids_after_phase1,
        rounds_after_phase1=rounds_after_phase1,
        reader_max_count=max_count,
        reader_max_hits=max_hits,
        reader_samples=samples,
        exit_codes=[p.exitcode for p in [*writers, reading]],
        open_reader=open_reader,
    )


@pytest.mark.slow
def test_every_process_finished_cleanly(scenario: Scenario) -> None:
    assert scenario.exit_codes == [0] * (WRITERS + 1)
    assert scenario.reader_samples > 0


@pytest.mark.slow
def test_same_ids_upserted_at_the_same_moment_leave_one_row_each(scenario: Scenario) -> None:
    # The table itself, not the adapter's view of it.
    assert scenario.table_rows_after_phase1 == len(IDS)
    assert sorted(scenario.table_ids_after_phase1) == sorted(IDS)
    assert scenario.rounds_after_phase1 == {ROUNDS - 1}  # the last round won everywhere


@pytest.mark.slow
def test_a_concurrent_reader_never_saw_duplicates(scenario: Scenario) -> None:
    assert scenario.reader_max_count <= len(IDS) + len(NEW_IDS)
    assert scenario.reader_max_hits <= len(IDS) + len(NEW_IDS)


@pytest.mark.slow
def test_an_open_reader_sees_other_processes_writes(scenario: Scenario) -> None:
    assert scenario.count_before == 0  # the table did not exist yet
    assert scenario.count_after_phase1 == len(IDS)
    # Phase 2 happened after the reader had the table open.
    reader = scenario.open_reader
    expected = sorted(IDS[100:] + NEW_IDS)
    assert reader.list_ids(TENANT) == expected
    assert reader.count(TENANT) == len(expected)
    hits = reader.semantic_search(TENANT, _vector(5), top_k=1000)
    assert sorted(hit.id for hit in hits) == expected


@pytest.mark.slow
def test_concurrent_delete_update_and_insert_all_apply(scenario: Scenario) -> None:
    table = lancedb.connect(scenario.path).open_table(table_name(TENANT))
    ids = table.to_arrow().column("id").to_pylist()
    assert table.count_rows() == len(IDS) - 100 + len(NEW_IDS)
    assert sorted(ids) == sorted(IDS[100:] + NEW_IDS)
    hits = scenario.open_reader.semantic_search(TENANT, _vector(1), top_k=1000)
    by_id = {hit.id: hit.metadata for hit in hits}
    assert {by_id[i]["writer"] for i in IDS[100:]} == {9}
    assert {by_id[i]["writer"] for i in NEW_IDS} == {7}


@pytest.mark.filterwarnings("ignore:lancedb fork support is experimental:RuntimeWarning")
def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    # Celery's prefork pool forks workers from a parent that may have used the index already.
    index = LanceDBVectorIndex(tmp_path / "vectors", DIM)
    index.upsert_vector(TENANT, _records(IDS[:5], 0, 0))
    assert index.count(TENANT) == 5
    pid = os.fork()
    if pid == 0:  # the child: write through the inherited object, then leave at once
        code = 1
        try:
            index.upsert_vector(TENANT, _records(IDS[5:10], 1, 0))
            code = 0 if index.count(TENANT) == 10 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert index.count(TENANT) == 10
    assert index.list_ids(TENANT) == sorted(IDS[:10])
