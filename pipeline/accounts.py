"""Use cases of user accounts: register, verify, authenticate, and manage API keys.

``bootstrap_accounts`` is the composition root of these ports (like ``pipeline.bootstrap`` for
the ingestion ports): it builds the MongoDB repositories and the configured Notifier from
settings unless the caller passes others.
"""

from dataclasses import dataclass
from datetime import timedelta

from adapters.ports import Notifier, UserRepository, UserVerificationRepository
from domain.errors import NotFoundError
from domain.job import utcnow
from domain.users import (
    ApiKey,
    AuthenticationError,
    User,
    UserStatus,
    VerificationError,
    api_key_matches,
    code_matches,
    new_api_key,
    new_user,
    new_verification_code,
    normalize_email,
    parse_api_key,
    verification_for,
)
from pipeline.settings import Settings, load_settings

OUTBOX_FILE = "outbox.jsonl"


@dataclass
class AccountServices:
    settings: Settings
    users: UserRepository
    verifications: UserVerificationRepository
    notifier: Notifier


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


def bootstrap_accounts(
    settings: Settings | None = None,
    *,
    users: UserRepository | None = None,
    verifications: UserVerificationRepository | None = None,
    notifier: Notifier | None = None,
) -> AccountServices:
    """Wire the account ports; adapters are lazy, nothing connects until first used."""
    settings = settings or load_settings()
    if users is None or verifications is None:
        from adapters.mongodb.users import MongoUserRepository, MongoUserVerificationRepository

        options = {"url": settings.require_mongo_url(), "database": settings.mongo_database,
                   "timeout_ms": settings.mongo_timeout_ms,
                   "write_concern_w": settings.mongo_write_concern,
                   "journal": settings.mongo_journal}
        users = users or MongoUserRepository(**options)  # type: ignore[arg-type]
        verifications = verifications or MongoUserVerificationRepository(
            **options)  # type: ignore[arg-type]
    return AccountServices(settings=settings, users=users, verifications=verifications,
                           notifier=notifier or _notifier(settings))


def _notifier(settings: Settings) -> Notifier:
    from adapters.email.notifiers import OutboxNotifier, SmtpNotifier

    api = settings.api
    if api.notifier == "smtp" and api.smtp_host:
        return SmtpNotifier(
            api.smtp_host, api.smtp_port, api.smtp_sender, username=api.smtp_username,
            password=api.smtp_password.get_secret_value() if api.smtp_password else None,
            starttls=api.smtp_starttls, use_tls=api.smtp_tls)
    return OutboxNotifier(settings.data_dir.resolve() / OUTBOX_FILE)


def register(accounts: AccountServices, email: str) -> User:
    """Create the user (or find the one with this email) and send a fresh verification code,
    which replaces any earlier one. An active user gets a code too: verifying it issues an
    additional key (how a user who lost every key gets back in)."""
    now = utcnow()
    user = accounts.users.create(new_user(email, now))
    code = new_verification_code()
    ttl = timedelta(seconds=accounts.settings.api.verification_ttl_seconds)
    accounts.verifications.put(verification_for(user.user_id, code, now, ttl))
    accounts.notifier.send_verification_code(user.email, code)
    return user


def verify(accounts: AccountServices, email: str, code: str) -> IssuedKey:
    """Check a code: the right one activates the user and issues an API key. Every guess
    counts (atomically, before the comparison); the last allowed wrong guess destroys the
    code. One message for every failure, so a caller learns nothing about who exists."""
    refused = VerificationError("the code is wrong, expired or used up; register again for a "
                                "new one")
    user = accounts.users.get_by_email(normalize_email(email))
    if user is None:
        raise refused
    stored = accounts.verifications.get(user.user_id)
    attempts = accounts.verifications.count_attempt(user.user_id)
    if stored is None or attempts is None:
        raise refused
    limit = accounts.settings.api.verification_max_attempts
    if attempts > limit:
        accounts.verifications.delete(user.user_id)
        raise refused
    if not code_matches(code, stored.code_hash):
        if attempts >= limit:
            accounts.verifications.delete(user.user_id)
        raise refused
    accounts.verifications.delete(user.user_id)
    active = accounts.users.activate(user.user_id) or user
    return _issue(accounts, active)


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
