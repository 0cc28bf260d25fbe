"""The domain model on its own: status machine, chunker, ids and keys, filters, retry, events."""

import itertools
import random
import re
import string

import pytest
from pydantic import ValidationError

from domain.documents import (
    Chunk,
    chunk_id,
    content_key,
    derived_key,
    document_id,
    parse_chunk_id,
    sanitize_filename,
)
from domain.events import StageMessage, UploadEvent
from domain.filters import matches
from domain.retry import retry_delay
from domain.status import (
    FORWARD_ORDER,
    STAGE_INPUT,
    STAGE_OUTPUT,
    JobStatus,
    Stage,
    can_transition,
    next_stage,
    redrive_status,
)

NON_TERMINAL = [s for s in JobStatus if not s.is_terminal]
TERMINAL = [JobStatus.DONE, JobStatus.FAILED]
FORWARD_PAIRS = list(itertools.pairwise(FORWARD_ORDER))


# --- status machine -------------------------------------------------------------------------


def test_terminal_statuses_are_exactly_done_and_failed():
    assert {s for s in JobStatus if s.is_terminal} == set(TERMINAL)


@pytest.mark.parametrize(("current", "new"), FORWARD_PAIRS)
def test_every_single_forward_step_is_legal(current, new):
    assert can_transition(current, new)


@pytest.mark.parametrize("current", FORWARD_ORDER)
def test_skipping_standing_still_and_going_backwards_are_illegal(current):
    position = FORWARD_ORDER.index(current)
    for new in FORWARD_ORDER:
        if FORWARD_ORDER.index(new) != position + 1:
            assert not can_transition(current, new), f"{current} -> {new}"


@pytest.mark.parametrize("current", TERMINAL)
@pytest.mark.parametrize("new", list(JobStatus))
def test_a_terminal_status_never_moves(current, new):
    assert not can_transition(current, new)


@pytest.mark.parametrize("current", NON_TERMINAL)
def test_failed_is_reachable_from_every_non_terminal_status(current):
    assert can_transition(current, JobStatus.FAILED)


def test_done_is_reached_only_from_indexed():
    sources = [s for s in JobStatus if can_transition(s, JobStatus.DONE)]
    assert sources == [JobStatus.INDEXED]


def test_walking_the_forward_order_one_step_at_a_time_reaches_done():
    status = JobStatus.QUEUED
    walked = [status]
    while not status.is_terminal:
        (status,) = [s for s in FORWARD_ORDER if can_transition(status, s)]
        walked.append(status)
    assert tuple(walked) == FORWARD_ORDER


@pytest.mark.parametrize(
    ("status", "stage"),
    [
        (JobStatus.QUEUED, Stage.STORE),
        (JobStatus.STORED, Stage.RECORD),
        (JobStatus.RECORDED, Stage.EXTRACT),
        (JobStatus.EXTRACTED, Stage.EMBED),
        (JobStatus.EMBEDDED, Stage.INDEX),
        (JobStatus.INDEXED, Stage.INDEX),
        (JobStatus.DONE, None),
        (JobStatus.FAILED, None),
    ],
)
def test_next_stage(status, stage):
    assert next_stage(status) is stage


@pytest.mark.parametrize("stage", list(Stage))
def test_each_stage_takes_its_input_status_to_the_next_status(stage):
    assert next_stage(STAGE_INPUT[stage]) is stage
    assert can_transition(STAGE_INPUT[stage], STAGE_OUTPUT[stage])


@pytest.mark.parametrize(
    ("stage", "status"),
    [
        (Stage.STORE, JobStatus.QUEUED),
        (Stage.RECORD, JobStatus.STORED),
        (Stage.EXTRACT, JobStatus.RECORDED),
        (Stage.EMBED, JobStatus.EXTRACTED),
        (Stage.INDEX, JobStatus.EMBEDDED),
    ],
)
def test_redrive_returns_to_the_status_the_failed_stage_needs(stage, status):
    assert redrive_status(stage) is status
    assert not redrive_status(stage).is_terminal
    assert next_stage(redrive_status(stage)) is stage


# --- ids and keys ---------------------------------------------------------------------------


def test_document_id_is_stable_per_tenant_and_source():
    assert document_id("acme", "reports/q1.pdf") == document_id("acme", "reports/q1.pdf")
    assert re.fullmatch(r"doc_[0-9a-f]{32}", document_id("acme", "reports/q1.pdf"))


def test_document_id_differs_across_tenants_and_sources():
    ids = {
        document_id("acme", "a.txt"),
        document_id("globex", "a.txt"),
        document_id("acme", "b.txt"),
        document_id("acme", "A.txt"),
    }
    assert len(ids) == 4


def test_document_id_does_not_confuse_tenant_and_source_boundaries():
    assert document_id("ab", "c") != document_id("a", "bc")
    assert document_id("a", "b/c") != document_id("a/b", "c")


@pytest.mark.parametrize("index", [0, 1, 7, 10_000])
@pytest.mark.parametrize("doc", ["doc_0123456789abcdef0123456789abcdef", "doc#with#hashes", "d"])
def test_chunk_id_round_trips(doc, index):
    vector_id = chunk_id(doc, index)
    assert vector_id == f"{doc}#{index}"
    assert parse_chunk_id(vector_id) == (doc, index)


@pytest.mark.parametrize("index", [-1, -100])
def test_chunk_id_refuses_a_negative_index(index):
    with pytest.raises(ValueError, match="negative"):
        chunk_id("doc_a", index)


def test_parse_chunk_id_refuses_a_non_numeric_index():
    with pytest.raises(ValueError, match="not a chunk id"):
        parse_chunk_id("doc_a#x")


def test_a_chunk_refuses_a_negative_index():
    with pytest.raises(ValidationError):
        Chunk(document_id="d", index=-1, text="t", start=0, end=1)


def test_content_key_shape():
    sha = "ab" * 32
    assert content_key("acme", sha) == f"acme/{sha}"
    assert content_key("acme", sha) != content_key("globex", sha)


def test_derived_key_shape():
    sha = "cd" * 32
    key = derived_key("acme", sha, "chunks.json")
    assert key == f"acme/derived/{sha}/chunks.json"
    assert key.startswith("acme/")
    assert key != content_key("acme", sha)
    assert not key.startswith(content_key("acme", sha))


# --- sanitize_filename ----------------------------------------------------------------------

SAFE_NAME = re.compile(r"[A-Za-z0-9._ -]+")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("My Notes - v2.txt", "My Notes - v2.txt"),
        ("../../etc/passwd", "passwd"),
        ("/abs/path/to/file.md", "file.md"),
        ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
        ("C:\\Users\\bob\\doc.txt", "doc.txt"),
        ("na\x00me.txt", "name.txt"),
        ("tab\tand\nnewline.txt", "tab_and_newline.txt"),
        ("bell\x07\x1b[31m.txt", "bell_31m.txt"),
        ("  .hidden.  ", "hidden"),
        ("café.txt", "caf_.txt"),
    ],
)
def test_sanitize_filename(raw, expected):
    assert sanitize_filename(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", "..", "...", "../", "..\\", "dir/", "\x00", "/", "\\\\server\\share\\"]
)
def test_sanitize_filename_never_returns_empty(raw):
    assert sanitize_filename(raw) == "unnamed"


def test_sanitize_filename_caps_long_names():
    assert len("x" * 300) == 300
    assert sanitize_filename("x" * 300) == "x" * 255
    assert len(sanitize_filename("y" * 296 + ".txt")) == 255
    assert sanitize_filename("short.txt", max_length=5) == "short"


def test_sanitize_filename_output_is_always_safe():
    rng = random.Random(1234)
    pool = string.printable + "\x00\x01\x7f/\\éü\u2013\u201c\u201d\u202e\uff0f\uff0e" + "../" * 3
    for _ in range(500):
        raw = "".join(rng.choice(pool) for _ in range(rng.randint(0, 400)))
        name = sanitize_filename(raw)
        assert name, raw
        assert len(name) <= 255
        assert SAFE_NAME.fullmatch(name), (raw, name)
        assert "/" not in name
        assert "\\" not in name
        assert name not in (".", "..")


# --- filters --------------------------------------------------------------------------------

META = {"tenant": "acme", "lang": "en", "page": 3, "tags": ["finance", "q1"], "draft": False}


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        (None, True),
        ({}, True),
        ({"tenant": "acme"}, True),
        ({"tenant": "globex"}, False),
        ({"tenant": "acme", "lang": "en"}, True),
        ({"tenant": "acme", "lang": "fr"}, False),
        ({"page": 3}, True),
        ({"page": 4}, False),
        ({"draft": False}, True),
        ({"lang": ["fr", "en"]}, True),
        ({"lang": ("fr", "de")}, False),
        ({"lang": []}, False),
        ({"page": [1, 2, 3]}, True),
        ({"tags": "q1"}, True),
        ({"tags": "q2"}, False),
        ({"tags": ["q2", "finance"]}, True),
        ({"tags": ["q2", "q3"]}, False),
        ({"missing": "x"}, False),
        ({"missing": ["x", "y"]}, False),
        ({"tenant": "acme", "missing": "x"}, False),
    ],
)
def test_matches(wanted, expected):
    assert matches(META, wanted) is expected


def test_a_string_filter_value_is_not_treated_as_a_list_of_characters():
    assert not matches({"lang": "e"}, {"lang": "en"})
    assert not matches({"lang": "en"}, {"lang": "e"})


def test_an_empty_list_field_matches_nothing():
    assert not matches({"tags": []}, {"tags": "x"})
    assert matches({"tags": []}, {})


# --- retry ----------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(8))
def test_retry_delay_is_within_half_bound_and_bound(attempt):
    rng = random.Random(attempt)
    bound = min(60.0, 2.0 ** (attempt + 1))
    for _ in range(200):
        delay = retry_delay(attempt, base=2.0, cap=60.0, rng=rng)
        assert bound / 2 <= delay <= bound


def test_retry_delay_grows_with_attempt_until_the_cap():
    rng = random.Random(7)
    highs = []
    lows = []
    for attempt in range(8):
        draws = [retry_delay(attempt, base=2.0, cap=60.0, rng=rng) for _ in range(200)]
        highs.append(max(draws))
        lows.append(min(draws))
    # ranges [2^a, 2^(a+1)] of consecutive attempts do not overlap below the cap
    for attempt in range(4):
        assert lows[attempt + 1] >= highs[attempt]
    assert max(highs) <= 60.0
    assert min(lows[5:]) >= 30.0  # capped bound 60 -> draws in [30, 60]


def test_retry_delay_is_capped():
    rng = random.Random(3)
    for attempt in range(10, 60):
        delay = retry_delay(attempt, base=2.0, cap=10.0, rng=rng)
        assert 5.0 <= delay <= 10.0


def test_retry_delay_is_deterministic_with_a_seeded_rng():
    first = [retry_delay(a, base=2.0, cap=60.0, rng=random.Random(42)) for a in range(6)]
    again = [retry_delay(a, base=2.0, cap=60.0, rng=random.Random(42)) for a in range(6)]
    assert first == again


def test_retry_after_is_a_floor():
    rng = random.Random(5)
    for _ in range(100):
        assert retry_delay(0, base=2.0, cap=60.0, retry_after=30.0, rng=rng) == 30.0
    # a Retry-After below the jittered delay changes nothing
    assert retry_delay(3, base=2.0, cap=60.0, retry_after=0.0, rng=random.Random(9)) == (
        retry_delay(3, base=2.0, cap=60.0, rng=random.Random(9))
    )


def test_retry_after_never_goes_beyond_the_cap():
    rng = random.Random(6)
    for attempt in range(5):
        assert retry_delay(attempt, base=2.0, cap=60.0, retry_after=3600.0, rng=rng) == 60.0


# --- events ---------------------------------------------------------------------------------


def upload(**overrides):
    fields = {
        "tenant": "acme",
        "source": "reports/q1.pdf",
        "source_uri": "file:///data/q1.pdf",
        "source_name": "q1.pdf",
    }
    return UploadEvent(**{**fields, **overrides})


@pytest.mark.parametrize("tenant", ["acme", "a", "0", "team-7", "team_7", "a" * 63])
def test_upload_event_accepts_valid_tenants(tenant):
    assert upload(tenant=tenant).tenant == tenant


@pytest.mark.parametrize(
    "tenant",
    ["", "Acme", "ACME", "acme/other", "../acme", "a/b", "-acme", "_acme", "ac me", "acme\n",
     "a" * 64, "acmé", "acme.com"],
)
def test_upload_event_rejects_bad_tenants(tenant):
    with pytest.raises(ValidationError):
        upload(tenant=tenant)


@pytest.mark.parametrize("size", [0, 1, 10**9, None])
def test_upload_event_accepts_non_negative_sizes(size):
    assert upload(size=size).size == size


def test_upload_event_rejects_a_negative_size():
    with pytest.raises(ValidationError):
        upload(size=-1)


@pytest.mark.parametrize("field", ["source", "source_uri", "source_name"])
def test_upload_event_requires_non_empty_references(field):
    with pytest.raises(ValidationError):
        upload(**{field: ""})


def test_upload_event_is_frozen_and_small():
    event = upload()
    with pytest.raises(ValidationError):
        event.tenant = "other"  # type: ignore[misc]
    assert event.content_type == "application/octet-stream"


@pytest.mark.parametrize("job_id", ["abcdefgh", "A1_b2-C3", "x" * 64, "0123456789abcdef"])
def test_stage_message_accepts_valid_job_ids(job_id):
    assert StageMessage(job_id=job_id).job_id == job_id


@pytest.mark.parametrize(
    "job_id",
    ["", "short", "abcdefg", "x" * 65, "abc/defgh", "abcdefgh\n", "abc defgh", "abcdefgh#1",
     "../../../etc"],
)
def test_stage_message_rejects_bad_job_ids(job_id):
    with pytest.raises(ValidationError):
        StageMessage(job_id=job_id)


def test_stage_message_rejects_a_non_string_job_id():
    with pytest.raises(ValidationError):
        StageMessage(job_id=12345678)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["5", "d#-1", "d#+1", "#3", "d#"])
def test_parse_chunk_id_refuses_what_chunk_id_never_makes(bad):
    with pytest.raises(ValueError, match="not a chunk id"):
        parse_chunk_id(bad)


def test_sanitize_filename_never_ends_in_a_dot_after_truncation():
    name = sanitize_filename("a" * 254 + ". b")
    assert not name.endswith((".", " "))
    assert len(name) <= 255


def test_retry_delay_refuses_a_base_that_would_not_grow():
    with pytest.raises(ValueError, match="above 1"):
        retry_delay(0, base=1.0, cap=60)


def test_retry_delay_caps_instead_of_overflowing():
    assert retry_delay(5000, base=2.0, cap=60, rng=random.Random(1)) <= 60


def test_a_boolean_filter_does_not_match_the_number_one():
    assert not matches({"n": 1}, {"n": True})
    assert matches({"n": True}, {"n": True})
    assert matches({"n": 1}, {"n": 1.0})
