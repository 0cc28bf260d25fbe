"""MongoDB adapters of the UserRepository and UserVerificationRepository ports.

Users live in ``users`` (``_id`` the user id, a unique index on the email), API key records in
``api_keys`` (``_id`` the key id; only the key's hash is stored) and verification codes in
``user_verifications`` (``_id`` the user id: the user's live codes, only as hashes, and the
guesses made), which a TTL index on the last code's ``expires_at`` empties by itself. Reads
also check each code's ``expires_at``, so an expired code is never used while it waits for
MongoDB's TTL monitor (which runs once a minute).
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
from domain.users import ApiKey, PendingVerification, User, UserStatus, VerificationCode

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
    """The UserVerificationRepository port: one document per user holding the live codes, the
    guess count and the last code's expiry, which the TTL index reads. A code is added by
    compare-and-set on the document's revision (``rev``), which every guess also moves, so
    neither a concurrent add nor a concurrent guess is lost."""

    collection_name = VERIFICATIONS_COLLECTION
    indexes = (IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0,
                          name="expires_at_ttl"),)

    def add(self, code: VerificationCode, max_live: int) -> bool:
        collection = self._collection()
        stored = {"code_hash": code.code_hash, "expires_at": _utc_ms(code.expires_at),
                  "created_at": _utc_ms(code.created_at)}
        with self._errors("storing a verification code"):
            for _ in range(_ADD_TRIES):
                doc = collection.find_one({"_id": code.user_id})
                if doc is None:
                    try:
                        collection.insert_one({"_id": code.user_id, "codes": [stored],
                                               "attempts": 0,
                                               "expires_at": stored["expires_at"], "rev": 1})
                    except DuplicateKeyError:
                        continue
                    return True
                live = _live_codes(doc)
                if len(live) >= max_live:
                    return False
                codes = [*live, stored]
                changed = collection.update_one(
                    {"_id": code.user_id, "rev": doc.get("rev")},
                    {"$set": {"codes": codes, "attempts": doc.get("attempts", 0) if live else 0,
                              "expires_at": max(c["expires_at"] for c in codes)},
                     "$inc": {"rev": 1}})
                if changed.matched_count == 1:
                    return True
        raise TransientError("a user's verification codes kept changing while one was added")

    def get(self, user_id: str) -> PendingVerification | None:
        collection = self._collection()
        with self._errors("reading verification codes"):
            doc = collection.find_one({"_id": user_id})
        codes = _live_codes(doc) if doc is not None else []
        if doc is None or not codes:
            return None
        try:
            return PendingVerification(
                user_id=user_id, attempts=int(doc.get("attempts", 0)),
                codes=tuple(VerificationCode(user_id=user_id, **c) for c in codes))
        except (ValidationError, TypeError) as exc:
            raise PermanentError(f"stored verification codes of {user_id!r} are not valid: "
                                 f"{exc}") from None

    def count_attempt(self, user_id: str) -> int | None:
        collection = self._collection()
        with self._errors("counting a verification attempt"):
            doc = collection.find_one_and_update(
                {"_id": user_id, "expires_at": {"$gt": datetime.now(UTC)}},
                {"$inc": {"attempts": 1, "rev": 1}},
                projection={"attempts": True}, return_document=ReturnDocument.AFTER)
        return None if doc is None else int(doc["attempts"])

    def delete(self, user_id: str) -> None:
        collection = self._collection()
        with self._errors("deleting verification codes"):
            collection.delete_one({"_id": user_id})


#: Compare-and-set rounds of ``add`` before it reports the contention as transient.
_ADD_TRIES = 8


def _live_codes(doc: Mapping[str, Any]) -> list[MongoDoc]:
    """The document's codes that have not expired (read before MongoDB's TTL monitor, which
    runs once a minute, removes the document)."""
    now = datetime.now(UTC)
    codes = doc.get("codes")
    if not isinstance(codes, list):
        return []  # a document of the earlier one-code layout: treated as expired
    return [c for c in codes if isinstance(c, dict) and c.get("expires_at") is not None
            and c["expires_at"] > now]
