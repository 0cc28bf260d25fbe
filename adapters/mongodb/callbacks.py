"""The CallbackRepository port on MongoDB: one record per tenant in ``tenant_callbacks``
(``_id`` the tenant), created by an upsert that only sets the secret on insert, so
concurrent first callers agree on one secret."""

from collections.abc import Mapping
from typing import Any

from pymongo import ReturnDocument

from adapters.mongodb.repositories import _MongoCollection
from domain.callbacks import TenantCallback
from domain.job import utcnow

CALLBACKS_COLLECTION = "tenant_callbacks"


def _from_doc(doc: Mapping[str, Any]) -> TenantCallback:
    return TenantCallback(tenant=doc["_id"], url=doc.get("url"), secret=doc["secret"],
                          updated_at=doc["updated_at"])


class MongoCallbackRepository(_MongoCollection):
    collection_name = CALLBACKS_COLLECTION
    indexes = ()

    def get(self, tenant: str) -> TenantCallback | None:
        collection = self._collection()
        with self._errors(f"reading the callback of {tenant}"):
            doc = collection.find_one({"_id": tenant})
        return None if doc is None else _from_doc(doc)

    def ensure(self, tenant: str, secret: str) -> TenantCallback:
        collection = self._collection()
        with self._errors(f"creating the callback of {tenant}"):
            doc = collection.find_one_and_update(
                {"_id": tenant},
                {"$setOnInsert": {"secret": secret, "url": None, "updated_at": utcnow()}},
                upsert=True, return_document=ReturnDocument.AFTER)
        assert doc is not None  # an upsert returning the document after it always has one
        return _from_doc(doc)

    def set_url(self, tenant: str, url: str | None) -> TenantCallback:
        collection = self._collection()
        with self._errors(f"writing the callback of {tenant}"):
            doc = collection.find_one_and_update(
                {"_id": tenant}, {"$set": {"url": url, "updated_at": utcnow()}},
                return_document=ReturnDocument.AFTER)
        if doc is None:
            from domain.errors import NotFoundError

            raise NotFoundError(f"no callback settings for {tenant}")
        return _from_doc(doc)
