"""The one size rule of an upload (domain.uploads.check_size): one wording wherever it runs
(the producer, the API, the uploads module, the store stage)."""

import pytest

from domain.errors import PermanentError
from domain.uploads import EmptyUploadError, UploadTooLargeError, check_size


def test_a_size_past_the_limit_is_too_large_with_one_wording() -> None:
    with pytest.raises(UploadTooLargeError) as refused:
        check_size(11, 10)
    assert str(refused.value) == "file too large: over the limit of 10 bytes"
    with pytest.raises(UploadTooLargeError) as named:
        check_size(11, 10, name="docs/a.md")
    assert str(named.value) == "file too large: docs/a.md is over the limit of 10 bytes"
    assert isinstance(refused.value, PermanentError)  # never retried


def test_no_bytes_is_empty_once_the_whole_size_is_known() -> None:
    check_size(0, 10)  # a size read so far, or declared: the bytes may still come
    with pytest.raises(EmptyUploadError) as refused:
        check_size(0, 10, complete=True)
    assert str(refused.value) == "empty file: nothing to ingest"
    with pytest.raises(EmptyUploadError):
        check_size(0, None, complete=True)  # no limit: emptiness only


def test_sizes_within_the_limit_and_unknown_sizes_pass() -> None:
    for size, limit in ((10, 10), (1, 10), (None, 10), (10**12, None)):
        check_size(size, limit, complete=True)
