"""The VectorIndex port on LanceDB, embedded in a local folder: one table per tenant.

Every write (create table, upsert, delete, optimize) holds an exclusive ``fcntl.flock`` on a
lock file per table under ``<path>/_locks``: LanceDB alone lets two processes upserting the
same ids at the same moment both insert them (measured), and the lock makes each
``merge_insert`` see the previous one. Reads take no lock. The connection is opened lazily with
``read_consistency_interval=0`` so a long-lived reader sees other processes' writes, and again
after a fork.

Each row keeps the record's metadata whole in ``metadata_json`` (hits return exactly what was
upserted) and copies these fields into typed columns for filtering: ``document_id``, ``source``
and ``sha256`` (strings), ``chunk_index`` (int) and ``keywords`` (list of strings). A record
whose metadata gives one of them another type is refused with PermanentError. Filters on those
fields run as a SQL prefilter; filters on any other field are applied after the search, on
enough candidates to fill ``top_k``.

Searches scan every row exactly until a table holds ``ann_min_rows`` vectors. From then on
``optimize`` (the periodic compaction, never an upsert) builds an approximate index on the
vectors: IVF_SQ (8-bit scalar quantisation in ``sqrt(rows)`` partitions), trained again when
the table has grown ``ann_retrain_growth`` times past the rows it was trained on; between
builds ``optimize`` folds new rows into it, and rows not yet in it are still scanned exactly,
so no vector is ever missing from a search. A search probes at least ``ann_nprobes``
partitions (more when a filter leaves too few rows) and re-ranks ``ann_refine_factor`` times
the wanted hits by their exact cosine. ``bench/search_latency.py`` measured the choice (IVF_SQ
trains in seconds where IVF_PQ takes minutes, and gives recall@10 >= 0.95 with the re-rank).

Full-text side (``KeywordSearchable``): each row keeps its record's ``text`` in a ``text``
column under LanceDB's own full-text index (native, ``use_tantivy=False``: no extra package),
created with the first upsert that brings text and brought up to date by ``optimize``; rows
written since the last ``optimize`` are searched too, by a scan. A table made before the
column existed gets it (empty) on its next write.

Compaction by size, not only by clock: every write (add, upsert, delete) leaves a fragment or
a deletion file and a version, and ``merge_insert``, ``delete`` and searches slow down with
the fragments (measured, one table, 3-row writes: a merge_insert 13 ms once compacted, 68 ms
at 100 fragments, 112 ms at 1,000; a delete 6 / 10 / 98 ms; a search 11 / 11 / 124 ms). So
after a write, still under the lock, a table whose version moved far enough since the last
count (in this process; a version number, no scan) for it to hold ``compact_after_fragments``
is asked its fragment count (its manifest's statistics) and compacted when it holds that
many: ``optimize`` (files compacted, the full-text index brought up to date) and versions
older than ``keep_versions_seconds`` pruned. The periodic ``optimize`` prunes with the same age.
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from adapters.filesystem.object_store import translate_os_error
from adapters.per_process import PerProcess
from adapters.ports import MetadataFilter
from domain import lexical
from domain.documents import VectorHit, VectorRecord
from domain.errors import ConversaError, PermanentError, TransientError
from domain.filters import Range, matches

_STRING_COLUMNS = ("document_id", "source", "sha256")
_INT_COLUMNS = ("chunk_index",)
_LIST_COLUMNS = ("keywords",)
_SAFE_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_DELETE_BATCH = 500
_LOCK_DIR = "_locks"
TEXT_COLUMN = "text"
#: Candidates fetched per wanted hit when part of a filter is applied after the search.
_OVERFETCH = 10
_MIN_CANDIDATES = 100
_VECTOR_COLUMN = "vector"
_ANN_INDEX = "vector_ann"


def table_name(tenant: str) -> str:
    """The tenant's table: ``t_<tenant>`` for ids like ``acme-eu``, else a hash (never shared)."""
    if not isinstance(tenant, str) or not tenant:
        raise PermanentError("tenant must be a non-empty string")
    if _SAFE_TENANT.fullmatch(tenant):
        return f"t_{tenant}"
    return f"h_{hashlib.sha256(tenant.encode()).hexdigest()[:40]}"


def quote(value: str) -> str:
    """A SQL string literal (single quotes doubled; backslashes are not escapes in LanceDB)."""
    return "'" + value.replace("'", "''") + "'"


def translate_error(exc: BaseException, action: str) -> ConversaError:
    """The domain error for anything LanceDB, pyarrow or the OS raised while doing ``action``."""
    if isinstance(exc, ConversaError):
        return exc
    if isinstance(exc, OSError):
        return translate_os_error(exc, action)
    text = f"{action}: {type(exc).__name__}: {exc}"
    lowered = str(exc).lower()
    if any(word in lowered for word in ("conflict", "retry", "timeout", "timed out")):
        return TransientError(text)
    if isinstance(exc, ValueError | TypeError | KeyError | IndexError | NotImplementedError):
        return PermanentError(text)  # pyarrow's ArrowInvalid/ArrowTypeError are among these
    if isinstance(exc, MemoryError):
        return TransientError(text)
    return TransientError(text)


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except ConversaError:
        raise
    except Exception as exc:
        raise translate_error(exc, action) from exc


class LanceDBVectorIndex:
    """Vectors of ``dimension`` floats in a LanceDB folder at ``path``; see the module docstring.

    ``lock_timeout`` bounds the wait for another process's write (TransientError after it).
    ``ann_*``: the approximate vector index (module docstring); ``ann_min_rows=0`` never
    builds one. ``metadata_cache_bytes`` and ``index_cache_bytes`` bound LanceDB's caches in
    this process (0: LanceDB's defaults, 1 GiB of metadata and 6 GiB of index parts); the
    metadata cache gains every version's manifest, one per write. ``compact_after_fragments``
    (0: never) and ``keep_versions_seconds``: the compaction after a write (module docstring).
    """

    def __init__(self, path: Path, dimension: int, *, lock_timeout: float = 120.0,
                 ann_min_rows: int = 10_000, ann_nprobes: int = 20,
                 ann_refine_factor: int = 10, ann_retrain_growth: float = 4.0,
                 metadata_cache_bytes: int = 64 * 1024 * 1024,
                 index_cache_bytes: int = 256 * 1024 * 1024,
                 compact_after_fragments: int = 64,
                 keep_versions_seconds: float = 600.0) -> None:
        if dimension < 1:
            raise PermanentError("vector dimension must be positive")
        self._ann_min_rows = ann_min_rows
        self._ann_nprobes = ann_nprobes
        self._ann_refine_factor = ann_refine_factor
        self._ann_retrain_growth = ann_retrain_growth
        self._cache_bytes = (metadata_cache_bytes or None, index_cache_bytes or None)
        self._path = Path(path)
        self._dimension = dimension
        self._lock_timeout = lock_timeout
        self._guard = threading.Lock()
        self._db: PerProcess[Any] = PerProcess(self._connect)
        self._tables: dict[str, Any] = {}
        #: Tables known (in this process) to have their full-text index.
        self._text_indexed: set[str] = set()
        self._compact_after = compact_after_fragments
        self._keep_versions = timedelta(seconds=keep_versions_seconds)
        #: Per table, its version when this process last counted its fragments.
        self._looked_at: dict[str, int] = {}

    @property
    def dimension(self) -> int:
        return self._dimension

    # -- connection, tables and the write lock ----------------------------------------------

    def _connection(self) -> Any:
        """The LanceDB connection of this process (opened again after a fork)."""
        return self._db.get()

    def _connect(self) -> Any:
        import lancedb

        self._path.mkdir(parents=True, exist_ok=True)
        metadata, index = self._cache_bytes
        session = lancedb.Session(index_cache_size_bytes=index,
                                  metadata_cache_size_bytes=metadata)
        db = lancedb.connect(self._path, read_consistency_interval=timedelta(0),
                             session=session)
        with self._guard:  # tables opened by another process's connection are not ours
            self._tables = {}
            self._text_indexed = set()
        return db

    def _schema(self) -> Any:
        import pyarrow as pa

        return pa.schema(
            [
                pa.field("id", pa.string(), nullable=False),
                pa.field("vector", pa.list_(pa.float32(), self._dimension)),
                pa.field("document_id", pa.string()),
                pa.field("chunk_index", pa.int64()),
                pa.field("source", pa.string()),
                pa.field("sha256", pa.string()),
                pa.field("keywords", pa.list_(pa.string())),
                pa.field("metadata_json", pa.string()),
                pa.field(TEXT_COLUMN, pa.string()),
            ]
        )

    def _checked(self, table: Any, name: str) -> Any:
        vector_type = table.schema.field("vector").type
        stored = getattr(vector_type, "list_size", None)
        if stored != self._dimension:
            raise PermanentError(
                f"table {name} holds vectors of dimension {stored}, "
                f"this index was configured for dimension {self._dimension}"
            )
        return table

    def _open(self, name: str) -> Any | None:
        """The table ``name``, or None while it does not exist."""
        db = self._connection()
        with self._guard:
            table = self._tables.get(name)
        if table is not None:
            return table
        try:
            table = db.open_table(name)
        except ValueError as exc:
            if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                return None
            raise
        table = self._checked(table, name)
        with self._guard:
            self._tables[name] = table
        return table

    def _open_or_create(self, name: str) -> Any:
        """The table ``name``, created if needed; call with the table's write lock held."""
        table = self._open(name)
        if table is not None:
            if TEXT_COLUMN not in table.schema.names:
                table.add_columns({TEXT_COLUMN: "CAST(NULL AS STRING)"})
            return table
        table = self._connection().create_table(name, schema=self._schema(), exist_ok=True)
        table = self._checked(table, name)
        with self._guard:
            self._tables[name] = table
        return table

    @contextlib.contextmanager
    def _write_lock(self, name: str) -> Iterator[None]:
        """Hold table ``name``'s cross-process write lock (also exclusive between threads)."""
        lock_dir = self._path / _LOCK_DIR
        lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self._lock_timeout
            delay = 0.002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
                    if time.monotonic() >= deadline:
                        raise TransientError(
                            f"vector table {name} stayed locked by another "
                            f"writer for {self._lock_timeout:.0f} s"
                        ) from exc
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # -- the port -----------------------------------------------------------------------------

    def upsert_vector(self, tenant: str, vectors: Sequence[VectorRecord]) -> None:
        self._write(tenant, vectors, None)

    def add_new_vectors(self, tenant: str, vectors: Sequence[VectorRecord],
                        fresh: Callable[[], bool]) -> None:
        """``AddsNewVectors``: a plain ``add`` when ``fresh()`` (asked under the table's
        write lock), else the upsert. ``merge_insert`` joins on every row's id, and its cost
        grew with the table's fragments (one per write until the next compaction): ~15 ms
        of CPU at 200 rows, ~80 ms at 1,000, where ``add`` stayed at ~5 ms. Appending twice
        would leave duplicate rows, as two unlocked upserts of the same ids did: hence the
        lock, under which ``fresh()`` must rule out any earlier writer of these ids."""
        self._write(tenant, vectors, fresh)

    def _write(self, tenant: str, vectors: Sequence[VectorRecord],
               fresh: Callable[[], bool] | None) -> None:
        name = table_name(tenant)
        # The same id twice in one call: the last one wins (merge_insert would insert both).
        unique = list({record.id: record for record in vectors}.values())
        if not unique:
            return
        with _translated(f"upsert {len(unique)} vectors for tenant {tenant}"):
            batch = self._to_arrow(unique)
            with self._write_lock(name):
                table = self._open_or_create(name)
                if fresh is not None and fresh():
                    table.add(batch)
                else:
                    (
                        table.merge_insert("id")
                        .when_matched_update_all()
                        .when_not_matched_insert_all()
                        .execute(batch)
                    )
                if any(record.text for record in unique):
                    self._ensure_text_index(table, name)
                self._compact_if_fragmented(table, name)

    def _compact_if_fragmented(self, table: Any, name: str) -> bool:
        """Compact table ``name`` when it holds ``compact_after_fragments`` fragments, counted
        only once enough versions went by since the last count for it to hold them (a write
        adds at most one). Call with the write lock. True when it compacted."""
        if self._compact_after <= 0:
            return False
        version = int(table.version)
        if version - self._looked_at.get(name, 0) < self._compact_after:
            return False
        fragments = int(table.stats()["fragment_stats"]["num_fragments"])
        if fragments < self._compact_after:
            # A write adds at most one fragment: look again once it could hold that many.
            self._looked_at[name] = version - fragments
            return False
        table.optimize(cleanup_older_than=self._keep_versions)
        self._looked_at[name] = int(table.version)
        return True

    def _ensure_text_index(self, table: Any, name: str) -> None:
        """Create the table's full-text index unless it has one; call with the write lock."""
        if name in self._text_indexed:
            return
        if not any(TEXT_COLUMN in index.columns and index.index_type == "FTS"
                   for index in table.list_indices()):
            from lancedb.index import FTS

            table.create_index(TEXT_COLUMN, config=FTS(with_position=False), replace=True)
        self._text_indexed.add(name)

    def _to_arrow(self, records: Sequence[VectorRecord]) -> Any:
        import pyarrow as pa

        matrix = np.empty((len(records), self._dimension), dtype=np.float32)
        columns: dict[str, list[Any]] = {name: [] for name in (
            "id", *_STRING_COLUMNS, *_INT_COLUMNS, *_LIST_COLUMNS, "metadata_json",
            TEXT_COLUMN)}
        for row, record in enumerate(records):
            if not record.id:
                raise PermanentError("a vector id must not be empty")
            if len(record.values) != self._dimension:
                raise PermanentError(
                    f"vector {record.id} has dimension {len(record.values)}, "
                    f"the index expects dimension {self._dimension}"
                )
            matrix[row] = record.values
            columns["id"].append(record.id)
            metadata = record.metadata
            for name in _STRING_COLUMNS:
                columns[name].append(_typed(record.id, name, metadata.get(name), str))
            for name in _INT_COLUMNS:
                columns[name].append(_typed(record.id, name, metadata.get(name), int))
            for name in _LIST_COLUMNS:
                columns[name].append(_typed(record.id, name, metadata.get(name), list))
            columns["metadata_json"].append(json.dumps(metadata, sort_keys=True))
            columns[TEXT_COLUMN].append(record.text or None)
        if not np.isfinite(matrix).all():
            raise PermanentError("vectors must not contain NaN or infinite values")
        schema = self._schema()
        arrays = [
            pa.array(columns["id"], pa.string()),
            pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), self._dimension),
            *(pa.array(columns[field.name], field.type) for field in list(schema)[2:]),
        ]
        return pa.Table.from_arrays(arrays, schema=schema)

    def semantic_search(
        self,
        tenant: str,
        vector: Sequence[float],
        top_k: int,
        metadata_filter: MetadataFilter | None = None,
    ) -> list[VectorHit]:
        query = np.asarray(vector, dtype=np.float32)
        if query.ndim != 1 or query.shape[0] != self._dimension:
            raise PermanentError(
                f"query vector has dimension {query.shape[-1] if query.ndim else 0}, "
                f"the index expects dimension {self._dimension}"
            )
        if top_k <= 0:
            return []
        name = table_name(tenant)
        compiled = compile_filter(metadata_filter)
        if compiled is None:
            return []  # no record can match
        where, residual = compiled
        with _translated(f"search the vectors of tenant {tenant}"):
            table = self._open(name)
            if table is None:
                return []
            return _best(lambda limit: self._nearest(table, query, where, limit), _hit,
                         top_k, metadata_filter, residual)

    def _nearest(self, table: Any, query: Any, where: str | None,
                 limit: int) -> list[dict[str, Any]]:
        search = table.search(query, vector_column_name=_VECTOR_COLUMN).distance_type("cosine")
        # Both are ignored while the table has no approximate index.
        search = search.minimum_nprobes(self._ann_nprobes).maximum_nprobes(0)
        if self._ann_refine_factor > 1:
            search = search.refine_factor(self._ann_refine_factor)
        if where:
            search = search.where(where, prefilter=True)
        result = search.select(["id", "metadata_json", "_distance"]).limit(limit).to_arrow()
        rows: list[dict[str, Any]] = result.to_pylist()
        return rows

    def keyword_search(
        self,
        tenant: str,
        query: str,
        top_k: int,
        metadata_filter: MetadataFilter | None = None,
    ) -> list[VectorHit]:
        """The rows whose text best matches ``query``'s words (LanceDB's BM25), best first."""
        words = lexical.terms(query)
        if top_k <= 0 or not words:
            return []
        compiled = compile_filter(metadata_filter)
        if compiled is None:
            return []
        where, residual = compiled
        name = table_name(tenant)
        with _translated(f"full-text search of tenant {tenant}"):
            table = self._open(name)
            if table is None or TEXT_COLUMN not in table.schema.names \
                    or not self._has_text_index(table, name):
                return []
            # Plain words only: LanceDB's match query reads no operators, but quotes and
            # punctuation are dropped here so that nothing in a query can be syntax.
            text = " ".join(words)

            def matching(limit: int) -> list[dict[str, Any]]:
                search = table.search(text, query_type="fts", fts_columns=TEXT_COLUMN)
                if where:
                    search = search.where(where, prefilter=True)
                rows: list[dict[str, Any]] = search.select(
                    ["id", "metadata_json", "_score"]).limit(limit).to_arrow().to_pylist()
                return rows

            return _best(matching, _text_hit, top_k, metadata_filter, residual)

    def _has_text_index(self, table: Any, name: str) -> bool:
        if name in self._text_indexed:
            return True
        if any(TEXT_COLUMN in index.columns and index.index_type == "FTS"
               for index in table.list_indices()):
            self._text_indexed.add(name)
            return True
        return False

    def delete_ids(self, tenant: str, ids: Sequence[str]) -> None:
        name = table_name(tenant)
        wanted = sorted(set(ids))
        if not wanted:
            return
        with _translated(f"delete {len(wanted)} vectors of tenant {tenant}"):
            if self._open(name) is None:
                return
            with self._write_lock(name):
                table = self._open_or_create(name)
                for start in range(0, len(wanted), _DELETE_BATCH):
                    batch = wanted[start : start + _DELETE_BATCH]
                    table.delete(f"id IN ({', '.join(quote(i) for i in batch)})")
                self._compact_if_fragmented(table, name)

    def delete_document(self, tenant: str, document_id: str) -> None:
        name = table_name(tenant)
        with _translated(f"delete document {document_id} of tenant {tenant}"):
            if self._open(name) is None:
                return
            with self._write_lock(name):
                table = self._open_or_create(name)
                table.delete(f"document_id = {quote(document_id)}")
                self._compact_if_fragmented(table, name)

    def count(self, tenant: str) -> int:
        name = table_name(tenant)
        with _translated(f"count the vectors of tenant {tenant}"):
            table = self._open(name)
            return 0 if table is None else int(table.count_rows())

    def list_ids(self, tenant: str, prefix: str = "") -> list[str]:
        name = table_name(tenant)
        with _translated(f"list the vectors of tenant {tenant}"):
            table = self._open(name)
            if table is None:
                return []
            scan = table.search()
            if prefix:
                scan = scan.where(f"starts_with(id, {quote(prefix)})")
            result = scan.select(["id"]).limit(None).to_arrow()
            ids: list[str] = result.column("id").to_pylist()
        return sorted(ids)

    def optimize(self, tenant: str | None = None,
                 cleanup_older_than: timedelta | None = None) -> int:
        """Compact the tenant's table (every table when ``tenant`` is None) and prune versions
        older than ``cleanup_older_than`` (default: ``keep_versions_seconds``); returns how many
        tables were optimised. Every write adds a version, so run this on a schedule.
        """
        with _translated("optimize the vector tables"):
            names = [table_name(tenant)] if tenant is not None else self._table_names()
            done = 0
            for name in names:
                if self._open(name) is None:
                    continue
                with self._write_lock(name):
                    table = self._open_or_create(name)
                    if table.count_rows(f"{TEXT_COLUMN} IS NOT NULL"):
                        self._ensure_text_index(table, name)
                    table.optimize(cleanup_older_than=cleanup_older_than
                                   if cleanup_older_than is not None else self._keep_versions)
                    self._looked_at[name] = int(table.version)
                # Outside the lock: training takes seconds to a minute and adds no rows, so
                # upserts go on meanwhile (rows they add are scanned until the next fold-in).
                self._build_ann_index(table)
                done += 1
            return done

    def _build_ann_index(self, table: Any) -> bool:
        """Build (or train again) the table's approximate vector index when its size calls
        for it. True when an index was built."""
        if self._ann_min_rows <= 0:
            return False
        rows = int(table.count_rows())
        if rows < self._ann_min_rows:
            return False
        indexed = self.ann_indexed_rows(table)
        if indexed is not None and rows < indexed * self._ann_retrain_growth:
            return False  # optimize() already folded the new rows into the index
        from lancedb.index import IvfSq

        partitions = max(1, int(math.sqrt(rows)))
        table.create_index(_VECTOR_COLUMN, config=IvfSq(distance_type="cosine",
                                                        num_partitions=partitions),
                           replace=True, name=_ANN_INDEX)
        return True

    @staticmethod
    def ann_indexed_rows(table: Any) -> int | None:
        """Rows the table's approximate vector index covers, or None without one."""
        for index in table.list_indices():
            if index.name == _ANN_INDEX:
                stats = table.index_stats(_ANN_INDEX)
                return int(stats.num_indexed_rows) if stats is not None else 0
        return None

    def ann_status(self, tenant: str) -> tuple[int, int | None]:
        """(rows, rows covered by the approximate index or None without one) of a tenant."""
        with _translated(f"read the vector index of tenant {tenant}"):
            table = self._open(table_name(tenant))
            if table is None:
                return 0, None
            return int(table.count_rows()), self.ann_indexed_rows(table)

    def _table_names(self) -> list[str]:
        """Every tenant table in the folder."""
        db = self._connection()
        names: list[str] = []
        token: str | None = None
        while True:
            page = db.list_tables(page_token=token)
            names.extend(page.tables)
            token = page.page_token
            if not token:
                break
        return [name for name in names if name.startswith(("t_", "h_"))]


def _typed(record_id: str, field: str, value: object, kind: type) -> Any:
    """A metadata value for a typed column, None when absent; PermanentError on a wrong type."""
    if value is None:
        return None
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is list:
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise PermanentError(
            f"vector {record_id}: metadata field {field!r} must be "
            f"{'a list of strings' if kind is list else kind.__name__}, "
            f"got {type(value).__name__}"
        )
    return value


def _best(fetch: Callable[[int], list[dict[str, Any]]],
          to_hit: Callable[[dict[str, Any]], VectorHit], top_k: int,
          metadata_filter: MetadataFilter | None, residual: bool) -> list[VectorHit]:
    """The best ``top_k`` hits of the rows ``fetch(limit)`` gives that pass the filter. Where
    part of the filter is checked here (``residual``), more rows are asked for, four times as
    many again until enough pass or the rows run out."""
    limit = top_k if not residual else max(top_k * _OVERFETCH, _MIN_CANDIDATES)
    while True:
        rows = fetch(limit)
        hits = [hit for hit in map(to_hit, rows) if matches(hit.metadata, metadata_filter)]
        if len(hits) >= top_k or len(rows) < limit:
            break
        limit *= 4
    hits.sort(key=lambda hit: (-hit.score, hit.id))
    return hits[:top_k]


def _text_hit(row: dict[str, Any]) -> VectorHit:
    metadata = json.loads(row["metadata_json"]) if row.get("metadata_json") else {}
    return VectorHit(id=row["id"], score=float(row["_score"]), metadata=metadata)


def _hit(row: dict[str, Any]) -> VectorHit:
    metadata = json.loads(row["metadata_json"]) if row.get("metadata_json") else {}
    distance = float(row["_distance"])
    score = 1.0 - distance if math.isfinite(distance) else -1.0
    return VectorHit(id=row["id"], score=score, metadata=metadata)


def compile_filter(wanted: MetadataFilter | None) -> tuple[str | None, bool] | None:
    """A metadata filter as (SQL prefilter or None, whether some fields are left to check
    after the search), or None when no record can match (an empty list of options, or
    options of a type the typed column never equals).

    The SQL keeps exactly ``domain.filters.matches``' meaning for the typed columns: a scalar
    is equality, a list is "one of", and on ``keywords`` either means sharing a keyword.
    """
    if not wanted:
        return None, False
    clauses: list[str] = []
    residual = False
    for field, expected in wanted.items():
        if isinstance(expected, Range):
            if field in _INT_COLUMNS:
                ops = {"gte": ">=", "gt": ">", "lte": "<=", "lt": "<"}
                clauses.extend(f"{field} {ops[bound]} {value!r}"
                               for bound, value in expected.bounds().items())
            elif field in _STRING_COLUMNS or field in _LIST_COLUMNS:
                return None  # strings and lists are never within a range
            else:
                residual = True
            continue
        options: list[object] = (
            list(expected)
            if isinstance(expected, Sequence) and not isinstance(expected, str)
            else [expected]
        )
        if field in _STRING_COLUMNS or field in _LIST_COLUMNS:
            texts = sorted({o for o in options if isinstance(o, str)})
            if not texts:
                return None
            literals = ", ".join(quote(text) for text in texts)
            if field in _LIST_COLUMNS:
                clauses.append(f"array_has_any({field}, make_array({literals}))")
            else:
                clauses.append(f"{field} IN ({literals})")
        elif field in _INT_COLUMNS:
            # Python equality, which matches() uses: 1 == True == 1.0, never "1".
            numbers = sorted({int(o) for o in options
                              if isinstance(o, int | float) and float(o).is_integer()})
            if not numbers:
                return None
            clauses.append(f"{field} IN ({', '.join(str(n) for n in numbers)})")
        else:
            residual = True
    return (" AND ".join(clauses) or None), residual
