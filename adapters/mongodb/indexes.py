"""The IndexRegistry port on MongoDB: each tenant's route (``index_routes``, ``_id`` the
tenant, compare-and-set on ``revision``) and its latest re-index run (``reindex_runs``,
``_id`` the run id)."""

from typing import Any

from pydantic import ValidationError
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from adapters.mongodb.repositories import MongoDoc, _MongoCollection, _to_bson
from domain.errors import PermanentError
from domain.indexes import IndexRoute, ReindexRun

ROUTES_COLLECTION = "index_routes"
RUNS_COLLECTION = "reindex_runs"
#: ``get_run``: a tenant's latest run.
RUNS_INDEXES = (IndexModel([("tenant", ASCENDING), ("started_at", DESCENDING)],
                           name="tenant_started_at"),)


class MongoIndexRegistry(_MongoCollection):
    collection_name = ROUTES_COLLECTION
    #: The tenants with a re-index under way (MongoDB refuses an empty index list anyway).
    indexes = (IndexModel([("building.backend", ASCENDING)], name="building_backend",
                          sparse=True),)

    def _runs(self) -> Any:
        routes = self._collection()
        runs = routes.database[RUNS_COLLECTION]
        self._make_indexes(runs, RUNS_INDEXES)
        return runs

    def get_route(self, tenant: str) -> IndexRoute | None:
        collection = self._collection()
        with self._errors(f"reading the index route of tenant {tenant}"):
            doc = collection.find_one({"_id": tenant})
        return None if doc is None else _model(IndexRoute, doc)

    def put_route(self, route: IndexRoute, expected_revision: int | None) -> IndexRoute | None:
        stored = route.model_copy(update={"revision": (expected_revision or 0) + 1})
        doc: MongoDoc = {"_id": route.tenant, **_to_bson(stored.model_dump(mode="python"))}
        collection = self._collection()
        with self._errors(f"writing the index route of tenant {route.tenant}"):
            if expected_revision is None:
                try:
                    collection.insert_one(doc)
                except DuplicateKeyError:
                    return None
                return stored
            # replace_one, not find_one_and_replace (a collection scan on SecantusDB: see
            # MongoJobRepository._update); the route after is the one written.
            written = collection.replace_one(
                {"_id": route.tenant, "revision": expected_revision}, doc)
        return None if written.matched_count == 0 else stored

    def get_run(self, tenant: str) -> ReindexRun | None:
        runs = self._runs()
        with self._errors(f"reading the re-index run of tenant {tenant}"):
            doc = runs.find_one({"tenant": tenant}, sort=[("started_at", DESCENDING)])
        return None if doc is None else _model(ReindexRun, doc)

    def save_run(self, run: ReindexRun) -> None:
        runs = self._runs()
        with self._errors(f"recording re-index run {run.run_id}"):
            runs.replace_one({"_id": run.run_id},
                             {"_id": run.run_id, **_to_bson(run.model_dump(mode="python"))},
                             upsert=True)


def _model(kind: type[IndexRoute] | type[ReindexRun], doc: MongoDoc) -> Any:
    data = {key: value for key, value in doc.items() if key != "_id"}
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        raise PermanentError(f"stored {kind.__name__} is not valid: {exc}") from None
