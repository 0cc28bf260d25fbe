"""Job counts for monitoring: how many jobs are in each status, and since when the oldest
unfinished one has been waiting. Read-only; one aggregation and one indexed find per call."""

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol, runtime_checkable

from pymongo import ASCENDING

from adapters.mongodb.repositories import MongoJobRepository
from domain.status import JobStatus


@runtime_checkable
class JobStats(Protocol):
    """Counts of jobs per status (every status present, zero when none) and the creation
    time of the oldest job not yet ``done`` or ``failed`` (None when there is none)."""

    def count_by_status(self) -> Mapping[JobStatus, int]: ...

    def oldest_active_created_at(self) -> datetime | None: ...

    def count_by_tenant_and_status(self) -> Mapping[tuple[str, JobStatus], int]:
        """Jobs per (tenant, status), only the pairs that have some."""
        ...


_ACTIVE = [status.value for status in JobStatus if not status.is_terminal]


class MongoJobStats(MongoJobRepository):
    """JobStats on the jobs collection the MongoJobRepository writes."""

    def count_by_status(self) -> Mapping[JobStatus, int]:
        counts = dict.fromkeys(JobStatus, 0)
        collection = self._collection()
        with self._errors("counting jobs"):
            for row in collection.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}]):
                try:
                    counts[JobStatus(row["_id"])] = int(row["n"])
                except ValueError:
                    continue
        return counts

    def count_by_tenant_and_status(self) -> Mapping[tuple[str, JobStatus], int]:
        counts: dict[tuple[str, JobStatus], int] = {}
        collection = self._collection()
        with self._errors("counting jobs per tenant"):
            for row in collection.aggregate([{"$group": {
                    "_id": {"tenant": "$tenant", "status": "$status"}, "n": {"$sum": 1}}}]):
                try:
                    key = (str(row["_id"]["tenant"]), JobStatus(row["_id"]["status"]))
                except ValueError:
                    continue
                counts[key] = int(row["n"])
        return counts

    def oldest_active_created_at(self) -> datetime | None:
        collection = self._collection()
        with self._errors("finding the oldest unfinished job"):
            doc = collection.find_one({"status": {"$in": _ACTIVE}},
                                      sort=[("created_at", ASCENDING)],
                                      projection={"created_at": 1})
        if doc is None:
            return None
        created: datetime = doc["created_at"]
        return created
