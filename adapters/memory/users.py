"""In-memory adapters of the user ports, the RequestLimiter and the Notifier, for tests and as
contract references."""

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from domain.job import utcnow
from domain.users import ApiKey, PendingVerification, User, UserStatus, VerificationCode


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
        self._pending: dict[str, PendingVerification] = {}
        self._lock = threading.Lock()

    def _live(self, user_id: str) -> PendingVerification | None:
        pending = self._pending.get(user_id)
        if pending is None:
            return None
        now = datetime.now(UTC)
        codes = tuple(code for code in pending.codes if code.expires_at > now)
        if not codes:
            del self._pending[user_id]
            return None
        if codes != pending.codes:
            pending = self._pending[user_id] = pending.model_copy(update={"codes": codes})
        return pending

    def add(self, code: VerificationCode, max_live: int) -> bool:
        with self._lock:
            pending = self._live(code.user_id)
            if pending is None:
                self._pending[code.user_id] = PendingVerification(user_id=code.user_id,
                                                                  codes=(code,))
                return True
            if len(pending.codes) >= max_live:
                return False
            self._pending[code.user_id] = pending.model_copy(
                update={"codes": (*pending.codes, code)})
            return True

    def get(self, user_id: str) -> PendingVerification | None:
        with self._lock:
            return self._live(user_id)

    def count_attempt(self, user_id: str) -> int | None:
        with self._lock:
            pending = self._live(user_id)
            if pending is None:
                return None
            pending = self._pending[user_id] = pending.model_copy(
                update={"attempts": pending.attempts + 1})
            return pending.attempts

    def delete(self, user_id: str) -> None:
        with self._lock:
            self._pending.pop(user_id, None)


class MemoryRequestLimiter:
    """The RequestLimiter port in one process's memory (tests, a single-process API)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window_seconds: float) -> float:
        with self._lock:
            now = self._clock()
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - window_seconds:
                hits.popleft()
            if len(hits) < limit:
                hits.append(now)
                return 0.0
            return hits[len(hits) - limit] + window_seconds - now


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
