"""MongoDB adapters of the UserRepository and UserVerificationRepository ports.

Users live in ``users`` (``_id`` the user id, a unique index on the email), API key records in
``api_keys`` (``_id`` the key id; only the key's hash is stored) and verification codes in
``user_verifications`` (``_id`` the user id; only the code's hash is stored), which a TTL index
on ``expires_at`` empties by itself. Reads also check ``expires_at``, so an expired code is
never used while it waits for MongoDB's TTL monitor (which runs once a minute).
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from adapters.mongodb.repositories import (
    DEFAULT_JOURNAL,
    DEFAULT_TIMEOUT_MS,
    DEFAULT_WRITE_CONCERN_W,
    MongoDoc,
    _MongoCollection,
    _to_bson,
    _utc_ms,
)
from domain.errors import PermanentError, TransientError
from domain.job import utcnow
from domain.users import ApiKey, User, UserStatus, VerificationCode

USERS_COLLECTION = "users"
API_KEYS_COLLECTION = "api_keys"
VERIFICATIONS_COLLECTION = "user_verifications"
M = TypeVar("M", bound=BaseModel)


def _from_doc(model: type[M], doc: Mapping[str, Any], id_field: str) -> M:
    data = dict(doc)
    data[id_field] = data.pop("_id")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PermanentError(f"stored {model.__name__} {data[id_field]!r} is not valid: {exc}"
                             ) from None


def _to_doc(record: BaseModel, id_field: str) -> MongoDoc:
    data: MongoDoc = _to_bson(record.model_dump(mode="python"))
    data["_id"] = data.pop(id_field)
    return data


class _Users(_MongoCollection):
    collection_name = USERS_COLLECTION
    indexes = (IndexModel([("email", ASCENDING)], unique=True, name="email"),)


class _ApiKeys(_MongoCollection):
    collection_name = API_KEYS_COLLECTION
    indexes = (IndexModel([("user_id", ASCENDING), ("created_at", ASCENDING)],
                          name="user_created_at"),)


class MongoUserRepository:
    """The UserRepository port on two collections, ``users`` and ``api_keys``."""

    def __init__(
        self,
        url: str,
        database: str,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        *,
        write_concern_w: int | str = DEFAULT_WRITE_CONCERN_W,
        journal: bool | None = DEFAULT_JOURNAL,
    ) -> None:
        options: dict[str, Any] = {"write_concern_w": write_concern_w, "journal": journal}
        self._users = _Users(url, database, timeout_ms, **options)
        self._keys = _ApiKeys(url, database, timeout_ms, **options)

    def __repr__(self) -> str:
        return f"MongoUserRepository({self._users.server})"

    def create(self, user: User) -> User:
        collection = self._users._collection()
        doc = _to_doc(user, "user_id")
        with self._users._errors("creating a user"):
            try:
                collection.insert_one(dict(doc))
            except DuplicateKeyError:
                stored = collection.find_one({"email": user.email})
                if stored is None:
                    raise TransientError("a user vanished while being created") from None
                return _from_doc(User, stored, "user_id")
        return _from_doc(User, doc, "user_id")  # as stored: datetimes to the millisecond

    def get(self, user_id: str) -> User | None:
        collection = self._users._collection()
        with self._users._errors("reading a user"):
            doc = collection.find_one({"_id": user_id})
        return None if doc is None else _from_doc(User, doc, "user_id")

    def get_by_email(self, email: str) -> User | None:
        collection = self._users._collection()
        with self._users._errors("reading a user"):
            doc = collection.find_one({"email": email})
        return None if doc is None else _from_doc(User, doc, "user_id")

    def activate(self, user_id: str) -> User | None:
        collection = self._users._collection()
        now = _utc_ms(utcnow())
        with self._users._errors("activating a user"):
            collection.update_one({"_id": user_id, "activated_at": None},
                                  {"$set": {"activated_at": now}})
            doc = collection.find_one_and_update(
                {"_id": user_id}, {"$set": {"status": UserStatus.ACTIVE.value}},
                return_document=ReturnDocument.AFTER)
        return None if doc is None else _from_doc(User, doc, "user_id")

    def add_key(self, key: ApiKey) -> None:
        collection = self._keys._collection()
        with self._keys._errors("storing an API key"):
            collection.replace_one({"_id": key.key_id}, _to_doc(key, "key_id"), upsert=True)

    def get_key(self, key_id: str) -> ApiKey | None:
        collection = self._keys._collection()
        with self._keys._errors("reading an API key"):
            doc = collection.find_one({"_id": key_id})
        return None if doc is None else _from_doc(ApiKey, doc, "key_id")

    def list_keys(self, user_id: str) -> list[ApiKey]:
        collection = self._keys._collection()
        with self._keys._errors("listing API keys"):
            docs = list(collection.find({"user_id": user_id})
                        .sort([("created_at", ASCENDING), ("_id", ASCENDING)]))
        return [_from_doc(ApiKey, doc, "key_id") for doc in docs]

    def revoke_key(self, user_id: str, key_id: str) -> ApiKey | None:
        collection = self._keys._collection()
        with self._keys._errors("revoking an API key"):
            collection.update_one({"_id": key_id, "user_id": user_id, "revoked_at": None},
                                  {"$set": {"revoked_at": _utc_ms(utcnow())}})
            doc = collection.find_one({"_id": key_id, "user_id": user_id})
        return None if doc is None else _from_doc(ApiKey, doc, "key_id")

    def close(self) -> None:
        self._users.close()
        self._keys.close()


class MongoUserVerificationRepository(_MongoCollection):
    """The UserVerificationRepository port: one document per user, a TTL index on expiry."""

    collection_name = VERIFICATIONS_COLLECTION
    indexes = (IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0,
                          name="expires_at_ttl"),)

    def put(self, code: VerificationCode) -> None:
        collection = self._collection()
        with self._errors("storing a verification code"):
            collection.replace_one({"_id": code.user_id}, _to_doc(code, "user_id"),
                                   upsert=True)

    def _live(self, user_id: str) -> MongoDoc:
        return {"_id": user_id, "expires_at": {"$gt": datetime.now(UTC)}}

    def get(self, user_id: str) -> VerificationCode | None:
        collection = self._collection()
        with self._errors("reading a verification code"):
            doc = collection.find_one(self._live(user_id))
        return None if doc is None else _from_doc(VerificationCode, doc, "user_id")

    def count_attempt(self, user_id: str) -> int | None:
        collection = self._collection()
        with self._errors("counting a verification attempt"):
            doc = collection.find_one_and_update(
                self._live(user_id), {"$inc": {"attempts": 1}},
                projection={"attempts": True}, return_document=ReturnDocument.AFTER)
        return None if doc is None else int(doc["attempts"])

    def delete(self, user_id: str) -> None:
        collection = self._collection()
        with self._errors("deleting a verification code"):
            collection.delete_one({"_id": user_id})
