"""Use cases of user accounts: register, verify, authenticate, and manage API keys.

The ports are wired by ``pipeline.bootstrap.bootstrap_accounts`` from the factory's
adapters, unless the caller passes others.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from adapters.ports import (
    Notifier,
    RequestLimiter,
    UserRepository,
    UserVerificationRepository,
)
from domain.errors import NotFoundError
from domain.job import utcnow
from domain.users import (
    ApiKey,
    AuthenticationError,
    TooManyRequestsError,
    User,
    UserStatus,
    VerificationError,
    api_key_matches,
    new_api_key,
    new_user,
    new_verification_code,
    normalize_email,
    parse_api_key,
    verification_for,
)
from pipeline.settings import Settings


@dataclass
class AccountServices:
    settings: Settings
    users: UserRepository
    verifications: UserVerificationRepository
    notifier: Notifier
    limiter: RequestLimiter


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's user and the tenant that user owns."""

    user_id: str
    tenant: str
    key_id: str


@dataclass(frozen=True)
class IssuedKey:
    """A key just made: the record, and the key itself, shown to the user this once."""

    record: ApiKey
    api_key: str
    user: User


def register(accounts: AccountServices, email: str, address: str) -> User:
    """Create the user (or find the one with this email, changing nothing about it) and send
    a new verification code, kept beside any live one: a request for someone else's email
    cannot spoil the code its owner is about to give back. An active user gets a code too:
    verifying it issues an additional key (how a user who lost every key gets back in).

    TooManyRequestsError past the limits per address and per email, when the email holds as
    many live codes as it may, or while its guesses are used up."""
    limits = accounts.settings.api.limits
    _limit(accounts, f"register:address:{address}", limits.registrations_per_address,
           "registrations from this address")
    normalized = normalize_email(email)
    _limit(accounts, f"register:email:{_digest(normalized)}", limits.registrations_per_email,
           "codes asked for this email")
    now = utcnow()
    user = accounts.users.create(new_user(normalized, now))
    pending = accounts.verifications.get(user.user_id)
    if pending is not None and pending.attempts >= accounts.settings.api.verification_max_attempts:
        raise TooManyRequestsError("too many wrong codes for this email; try again later",
                                   retry_after=_until(pending.expires_at))
    code = new_verification_code()
    ttl = timedelta(seconds=accounts.settings.api.verification_ttl_seconds)
    if not accounts.verifications.add(verification_for(user.user_id, code, now, ttl),
                                      limits.registrations_per_email):
        pending = accounts.verifications.get(user.user_id)
        raise TooManyRequestsError(
            "this email already holds every code it may; use one, or try again later",
            retry_after=_until(min(c.expires_at for c in pending.codes)) if pending else 1.0)
    accounts.notifier.send_verification_code(user.email, code)
    return user


def verify(accounts: AccountServices, email: str, code: str, address: str) -> IssuedKey:
    """Check a code against the user's live codes: a right one activates the user, issues an
    API key and ends every code. Every guess counts (atomically, before the comparison),
    per email across all its codes; past the cap, or past the limits per address and per
    email, TooManyRequestsError. One message for every wrong answer, so a caller learns
    nothing about who exists."""
    limits = accounts.settings.api.limits
    cap = accounts.settings.api.verification_max_attempts
    _limit(accounts, f"verify:address:{address}", limits.verifications_per_address,
           "verification attempts from this address")
    normalized = normalize_email(email)
    _limit(accounts, f"verify:email:{_digest(normalized)}", cap,
           "verification attempts for this email")
    refused = VerificationError("the code is wrong, expired or used up; register again for a "
                                "new one")
    user = accounts.users.get_by_email(normalized)
    if user is None:
        raise refused
    pending = accounts.verifications.get(user.user_id)
    attempts = accounts.verifications.count_attempt(user.user_id)
    if pending is None or attempts is None:
        raise refused
    if attempts > cap:
        raise TooManyRequestsError("too many verification attempts for this email; try "
                                   "again later", retry_after=_until(pending.expires_at))
    if not pending.matches(code):
        raise refused
    accounts.verifications.delete(user.user_id)
    active = accounts.users.activate(user.user_id) or user
    return _issue(accounts, active)


def _limit(accounts: AccountServices, key: str, limit: int, what: str) -> None:
    wait = accounts.limiter.hit(key, limit, accounts.settings.api.limits.window_seconds)
    if wait > 0:
        raise TooManyRequestsError(f"too many {what}; try again later", retry_after=wait)


def _digest(email: str) -> str:
    """An email as a limiter key: hashed, so the limiter's store holds no addresses."""
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def _until(moment: datetime) -> float:
    return max(1.0, (moment - utcnow()).total_seconds())


def _issue(accounts: AccountServices, user: User) -> IssuedKey:
    record, plaintext = new_api_key(user.user_id, utcnow())
    accounts.users.add_key(record)
    return IssuedKey(record=record, api_key=plaintext, user=user)


def authenticate(accounts: AccountServices, api_key: str | None) -> Principal:
    """The caller behind an API key; AuthenticationError for a missing, unknown, revoked or
    wrong key, or one whose user is not active."""
    if not api_key:
        raise AuthenticationError("an API key is required (Authorization: Bearer <key>)")
    refused = AuthenticationError("the API key is not valid")
    key_id = parse_api_key(api_key)
    stored = accounts.users.get_key(key_id)
    if stored is None or not stored.active or not api_key_matches(api_key, stored):
        raise refused
    user = accounts.users.get(stored.user_id)
    if user is None or user.status is not UserStatus.ACTIVE:
        raise refused
    return Principal(user_id=user.user_id, tenant=user.tenant, key_id=key_id)


def list_keys(accounts: AccountServices, principal: Principal) -> list[ApiKey]:
    return accounts.users.list_keys(principal.user_id)


def revoke_key(accounts: AccountServices, principal: Principal, key_id: str) -> ApiKey:
    """Revoke one of the caller's keys (idempotent); another user's key is NotFoundError."""
    revoked = accounts.users.revoke_key(principal.user_id, key_id)
    if revoked is None:
        raise NotFoundError(f"no API key {key_id}")
    return revoked


def rotate_key(accounts: AccountServices, principal: Principal, key_id: str) -> IssuedKey:
    """A new key replacing one of the caller's active keys, which is revoked."""
    current = accounts.users.get_key(key_id)
    if current is None or current.user_id != principal.user_id:
        raise NotFoundError(f"no API key {key_id}")
    if not current.active:
        raise NotFoundError(f"no active API key {key_id}")
    user = accounts.users.get(principal.user_id)
    if user is None:
        raise NotFoundError(f"no API key {key_id}")
    issued = _issue(accounts, user)
    accounts.users.revoke_key(principal.user_id, key_id)
    return issued
