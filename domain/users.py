"""Users, their API keys and verification codes, and the rules for the secrets (no I/O).

- A user registers with an email and is ``pending`` until a verification code sent to that
  email is given back; then ``active``. Each user has a tenant of their own, derived from the
  user id and never from anything a request says.
- Verification codes are random digits, stored only as a salted scrypt hash (a code has little
  entropy, so a fast hash would be cheap to reverse) and expire after a TTL. A user may hold a
  few live codes at once: asking for a code adds one and never cancels another, so nobody
  else's request can spoil the code its owner is about to type. The guesses are counted per
  user across all their live codes (at most ``MAX_VERIFICATION_ATTEMPTS``), so a new code
  brings no new guesses; the count ends only when every code has expired or one was used.
- API keys are ``cvk_<key id>_<secret>``: the key id finds the record, the whole key is stored
  only as its SHA-256 (the secret has 256 bits of entropy, so a fast hash is enough), and only
  the prefix ``cvk_<key id>`` is ever shown again.
"""

import hashlib
import hmac
import re
import secrets
import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain.errors import ConversaError, PermanentError

MAX_VERIFICATION_ATTEMPTS = 5
VERIFICATION_CODE_DIGITS = 8
API_KEY_PREFIX = "cvk"
_KEY_ID_HEX = 16
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_API_KEY = re.compile(rf"^{API_KEY_PREFIX}_([0-9a-f]{{{_KEY_ID_HEX}}})_([A-Za-z0-9_-]{{43}})$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


class AuthenticationError(PermanentError):
    """No API key, or a key that is unknown, revoked or malformed."""


class VerificationError(PermanentError):
    """A verification code that is wrong, expired, used up, or for no pending registration."""


class TooManyRequestsError(ConversaError):
    """A registration or verification past one of its limits; ``retry_after`` is how many
    seconds until the same request would be allowed again."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UserStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"


class User(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_id: str
    email: str
    tenant: str
    status: UserStatus = UserStatus.PENDING
    created_at: datetime
    activated_at: datetime | None = None


class ApiKey(BaseModel):
    """A stored API key: never the key itself, only its hash and its printable prefix."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    user_id: str
    key_hash: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def prefix(self) -> str:
        return f"{API_KEY_PREFIX}_{self.key_id}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class VerificationCode(BaseModel):
    """One code sent to a user: its hash and when it expires."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    code_hash: str
    expires_at: datetime
    created_at: datetime


class PendingVerification(BaseModel):
    """A user's live codes (oldest first) and the guesses made against any of them."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    codes: tuple[VerificationCode, ...]
    attempts: int = Field(default=0, ge=0)

    @property
    def expires_at(self) -> datetime:
        """When the last code expires, and with it the guess count."""
        return max(code.expires_at for code in self.codes)

    def matches(self, code: str) -> bool:
        """Whether ``code`` is one of the live codes (every hash is checked, in constant time
        each, so the answer's timing does not say which)."""
        results = [code_matches(code, stored.code_hash) for stored in self.codes]
        return any(results)


def normalize_email(email: str) -> str:
    """The email as stored and compared: trimmed, lower case; PermanentError if not one."""
    cleaned = email.strip().lower()
    if not _EMAIL.match(cleaned) or "." not in cleaned.rsplit("@", 1)[1]:
        raise PermanentError("not a valid email address")
    return cleaned


def new_user_id() -> str:
    return uuid.uuid4().hex


def tenant_of(user_id: str) -> str:
    """A user's tenant: derived from the user id alone, valid as an UploadEvent tenant."""
    return f"u-{user_id[:32]}"


def new_user(email: str, now: datetime) -> User:
    user_id = new_user_id()
    return User(user_id=user_id, email=normalize_email(email), tenant=tenant_of(user_id),
                created_at=now)


# -- verification codes -----------------------------------------------------------------------

def new_verification_code() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(VERIFICATION_CODE_DIGITS))


def hash_code(code: str, salt: bytes | None = None) -> str:
    """``scrypt$<salt hex>$<hash hex>`` of a code, with a fresh random salt unless given."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(code.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P,
                            dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def code_matches(code: str, code_hash: str) -> bool:
    try:
        scheme, salt_hex, _ = code_hash.split("$")
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    return hmac.compare_digest(hash_code(code.strip(), salt), code_hash)


def verification_for(user_id: str, code: str, now: datetime, ttl: timedelta
                     ) -> VerificationCode:
    return VerificationCode(user_id=user_id, code_hash=hash_code(code), expires_at=now + ttl,
                            created_at=now)


# -- API keys ---------------------------------------------------------------------------------

def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key(user_id: str, now: datetime) -> tuple[ApiKey, str]:
    """A new key record and the key itself, which is shown to the user once and not kept."""
    key_id = secrets.token_hex(_KEY_ID_HEX // 2)
    plaintext = f"{API_KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    return ApiKey(key_id=key_id, user_id=user_id, key_hash=hash_api_key(plaintext),
                  created_at=now), plaintext


def parse_api_key(key: str) -> str:
    """The key id of a well-formed key; AuthenticationError otherwise."""
    match = _API_KEY.match(key.strip())
    if match is None:
        raise AuthenticationError("malformed API key")
    return match.group(1)


def api_key_matches(key: str, stored: ApiKey) -> bool:
    return hmac.compare_digest(hash_api_key(key.strip()), stored.key_hash)
