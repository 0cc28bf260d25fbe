"""The account rules: emails, tenants, code and key hashing (domain/users.py, no I/O)."""

import pytest

from domain.errors import PermanentError
from domain.events import UploadEvent
from domain.job import utcnow
from domain.users import (
    AuthenticationError,
    api_key_matches,
    code_matches,
    hash_code,
    new_api_key,
    new_user,
    new_verification_code,
    normalize_email,
    parse_api_key,
)


def test_codes_are_random_digits_hashed_with_a_salt() -> None:
    codes = {new_verification_code() for _ in range(50)}
    assert len(codes) == 50
    code = codes.pop()
    first, second = hash_code(code), hash_code(code)
    assert first != second
    assert code not in first
    assert code_matches(code, first)
    assert code_matches(code, second)
    assert not code_matches("0" + code[1:] if code[0] != "0" else "1" + code[1:], first)
    assert not code_matches(code, "md5$00$00")
    assert not code_matches(code, "garbage")


def test_keys_are_stored_as_a_hash_and_found_by_their_id() -> None:
    record, key = new_api_key("u1", utcnow())
    assert key not in record.model_dump_json()
    assert key.startswith(record.prefix + "_")
    assert parse_api_key(key) == record.key_id
    assert api_key_matches(key, record)
    assert not api_key_matches(key[:-1] + ("A" if key[-1] != "A" else "B"), record)
    for bad in ("", "cvk_x_y", key + "x", "Bearer " + key):
        with pytest.raises(AuthenticationError):
            parse_api_key(bad)


def test_emails_are_normalized_and_checked() -> None:
    assert normalize_email("  Ann@Example.COM ") == "ann@example.com"
    for bad in ("ann", "ann@", "@example.com", "ann@example", "a b@example.com"):
        with pytest.raises(PermanentError):
            normalize_email(bad)


def test_each_user_has_a_tenant_valid_for_upload_events() -> None:
    first, second = new_user("a@example.com", utcnow()), new_user("a@example.com", utcnow())
    assert first.tenant != second.tenant
    UploadEvent(tenant=first.tenant, source="s", source_uri="object:x", source_name="n")
