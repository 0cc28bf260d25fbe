"""In-memory adapters of the user ports and the Notifier, for tests and as contract references."""

import threading
from datetime import UTC, datetime

from domain.job import utcnow
from domain.users import ApiKey, User, UserStatus, VerificationCode


class MemoryUserRepository:
    def __init__(self) -> None:
        self._users: dict[str, User] = {}
        self._keys: dict[str, ApiKey] = {}
        self._lock = threading.Lock()

    def create(self, user: User) -> User:
        with self._lock:
            for stored in self._users.values():
                if stored.email == user.email:
                    return stored
            self._users[user.user_id] = user
            return user

    def get(self, user_id: str) -> User | None:
        with self._lock:
            return self._users.get(user_id)

    def get_by_email(self, email: str) -> User | None:
        with self._lock:
            return next((u for u in self._users.values() if u.email == email), None)

    def activate(self, user_id: str) -> User | None:
        with self._lock:
            user = self._users.get(user_id)
            if user is None:
                return None
            user = user.model_copy(update={"status": UserStatus.ACTIVE,
                                           "activated_at": user.activated_at or utcnow()})
            self._users[user_id] = user
            return user

    def add_key(self, key: ApiKey) -> None:
        with self._lock:
            self._keys[key.key_id] = key

    def get_key(self, key_id: str) -> ApiKey | None:
        with self._lock:
            return self._keys.get(key_id)

    def list_keys(self, user_id: str) -> list[ApiKey]:
        with self._lock:
            keys = [key for key in self._keys.values() if key.user_id == user_id]
        return sorted(keys, key=lambda key: (key.created_at, key.key_id))

    def revoke_key(self, user_id: str, key_id: str) -> ApiKey | None:
        with self._lock:
            key = self._keys.get(key_id)
            if key is None or key.user_id != user_id:
                return None
            if key.revoked_at is None:
                key = self._keys[key_id] = key.model_copy(update={"revoked_at": utcnow()})
            return key


class MemoryUserVerificationRepository:
    def __init__(self) -> None:
        self._codes: dict[str, VerificationCode] = {}
        self._lock = threading.Lock()

    def _live(self, user_id: str) -> VerificationCode | None:
        code = self._codes.get(user_id)
        if code is not None and code.expires_at <= datetime.now(UTC):
            del self._codes[user_id]
            return None
        return code

    def put(self, code: VerificationCode) -> None:
        with self._lock:
            self._codes[code.user_id] = code

    def get(self, user_id: str) -> VerificationCode | None:
        with self._lock:
            return self._live(user_id)

    def count_attempt(self, user_id: str) -> int | None:
        with self._lock:
            code = self._live(user_id)
            if code is None:
                return None
            code = self._codes[user_id] = code.model_copy(update={"attempts": code.attempts + 1})
            return code.attempts

    def delete(self, user_id: str) -> None:
        with self._lock:
            self._codes.pop(user_id, None)


class MemoryNotifier:
    """Keeps every message; ``last_code(email)`` is what a test reads."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def send_verification_code(self, email: str, code: str) -> None:
        with self._lock:
            self.sent.append((email, code))

    def last_code(self, email: str) -> str:
        with self._lock:
            return next(code for to, code in reversed(self.sent) if to == email)
