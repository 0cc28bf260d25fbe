"""The ObjectStore contract, run against every adapter of the port (plus filesystem specifics)."""

import errno
import hashlib
import os
import shutil
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from adapters.filesystem.object_store import FilesystemObjectStore
from adapters.memory.fakes import MemoryObjectStore
from adapters.ports import ObjectStore
from adapters.s3.object_store import S3ObjectStore
from domain.documents import content_key, derived_key
from domain.errors import NotFoundError, PermanentError, TransientError
from tests.support import moto_server

SHA = hashlib.sha256(b"hello").hexdigest()


@pytest.fixture(params=["memory", "filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "memory":
        return MemoryObjectStore()
    if request.param == "s3":
        return S3ObjectStore(
            moto_server.unique_bucket(), endpoint_url=request.getfixturevalue("s3_endpoint"),
            region=moto_server.REGION, access_key_id=moto_server.ACCESS_KEY_ID,
            secret_access_key=moto_server.SECRET_ACCESS_KEY, create_bucket=True)
    return FilesystemObjectStore(tmp_path / "objects")


def test_implements_the_port(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_put_then_get_head_and_open(store: ObjectStore) -> None:
    key = content_key("acme", SHA)
    info = store.put_bytes(key, b"hello", {"content_type": "text/plain", "name": "a.txt"})
    assert (info.key, info.size, dict(info.metadata)) == (
        key, 5, {"content_type": "text/plain", "name": "a.txt"})
    assert store.get_bytes(key) == b"hello"
    with store.open(key) as handle:
        assert handle.read() == b"hello"
    head = store.head(key)
    assert head is not None
    assert (head.key, head.size, dict(head.metadata)) == (
        key, 5, {"content_type": "text/plain", "name": "a.txt"})


def test_nested_derived_keys_and_empty_objects(store: ObjectStore) -> None:
    key = derived_key("acme", SHA, "chunks.json")
    store.put_bytes(key, b"", {})
    assert store.get_bytes(key) == b""
    head = store.head(key)
    assert head is not None
    assert head.size == 0
    assert dict(head.metadata) == {}


def test_same_key_twice_keeps_the_last_write(store: ObjectStore) -> None:
    key = content_key("acme", SHA)
    store.put_bytes(key, b"first version", {"v": "1", "only_first": "x"})
    store.put_bytes(key, b"second", {"v": "2"})
    assert store.get_bytes(key) == b"second"
    head = store.head(key)
    assert head is not None
    assert (head.size, dict(head.metadata)) == (6, {"v": "2"})


def test_upload_file_copies_the_file(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "upload.bin"
    payload = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(payload)
    key = content_key("acme", hashlib.sha256(payload).hexdigest())
    info = store.upload_file(key, source, {"name": "upload.bin"})
    assert (info.size, dict(info.metadata)) == (len(payload), {"name": "upload.bin"})
    assert store.get_bytes(key) == payload
    # Uploading again (a retried task) is idempotent.
    store.upload_file(key, source, {"name": "upload.bin"})
    assert store.get_bytes(key) == payload


def test_an_open_reader_never_sees_a_partial_or_mixed_object(store: ObjectStore) -> None:
    key = content_key("acme", SHA)
    store.put_bytes(key, b"A" * 100_000, {})
    with store.open(key) as handle:
        first = handle.read(10)
        store.put_bytes(key, b"B" * 50_000, {})
        rest = handle.read()
    assert first + rest == b"A" * 100_000
    assert store.get_bytes(key) == b"B" * 50_000


def test_missing_keys(store: ObjectStore) -> None:
    key = content_key("acme", SHA)
    with pytest.raises(NotFoundError):
        store.get_bytes(key)
    with pytest.raises(NotFoundError):
        store.open(key)
    assert store.head(key) is None
    store.delete_file(key)  # not an error


def test_delete_removes_and_twice_is_fine(store: ObjectStore) -> None:
    key = content_key("acme", SHA)
    other = content_key("acme", "0" * 64)
    store.put_bytes(key, b"x", {"a": "b"})
    store.put_bytes(other, b"y", {})
    store.delete_file(key)
    store.delete_file(key)
    assert store.head(key) is None
    with pytest.raises(NotFoundError):
        store.get_bytes(key)
    assert store.get_bytes(other) == b"y"
    # A deleted key can be written again, without its old metadata.
    store.put_bytes(key, b"z", {})
    head = store.head(key)
    assert head is not None
    assert dict(head.metadata) == {}


def test_tenants_do_not_see_each_others_objects(store: ObjectStore) -> None:
    store.put_bytes(content_key("tenant-a", SHA), b"a's bytes", {"owner": "a"})
    assert store.head(content_key("tenant-b", SHA)) is None
    with pytest.raises(NotFoundError):
        store.get_bytes(content_key("tenant-b", SHA))
    store.put_bytes(content_key("tenant-b", SHA), b"b's bytes", {"owner": "b"})
    store.delete_file(content_key("tenant-b", SHA))
    assert store.get_bytes(content_key("tenant-a", SHA)) == b"a's bytes"


# -- the filesystem adapter's own promises ----------------------------------------------------


@pytest.fixture
def fs_store(tmp_path: Path) -> FilesystemObjectStore:
    return FilesystemObjectStore(tmp_path / "objects")


def test_filesystem_missing_upload_source_is_permanent(
    fs_store: FilesystemObjectStore, tmp_path: Path
) -> None:
    # MemoryObjectStore lets FileNotFoundError escape here, so this is not run against it.
    with pytest.raises(PermanentError):
        fs_store.upload_file(content_key("acme", SHA), tmp_path / "does-not-exist", {})
    assert fs_store.head(content_key("acme", SHA)) is None


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../escape", "acme/../../escape", "acme/./x", "acme//x", "acme/x/",
     "acme\\x", "acme/x\x00y", "acme/.meta/x", ".hidden", "acme/.x.tmp", "..", "."],
)
def test_filesystem_rejects_keys_that_could_escape_the_root(
    fs_store: FilesystemObjectStore, key: str, tmp_path: Path
) -> None:
    with pytest.raises(PermanentError):
        fs_store.put_bytes(key, b"x", {})
    with pytest.raises(PermanentError):
        fs_store.get_bytes(key)
    with pytest.raises(PermanentError):
        fs_store.head(key)
    with pytest.raises(PermanentError):
        fs_store.delete_file(key)
    assert not (tmp_path / "escape").exists()


def test_filesystem_never_follows_a_symlink_out_of_the_root(
    fs_store: FilesystemObjectStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    fs_store.root.mkdir(parents=True)
    (fs_store.root / "evil").symlink_to(outside)
    with pytest.raises(PermanentError):
        fs_store.put_bytes("evil/x", b"x", {})
    assert list(outside.iterdir()) == []


def test_filesystem_layout_and_no_leftover_temporary_files(
    fs_store: FilesystemObjectStore,
) -> None:
    key = derived_key("acme", SHA, "chunks.json")
    for n in range(3):
        fs_store.put_bytes(key, b"[]" * n, {"n": str(n)})
    files = sorted(str(p.relative_to(fs_store.root)) for p in fs_store.root.rglob("*")
                   if p.is_file())
    assert files == [f".meta/acme/derived/{SHA}/chunks.json.json",
                     f"acme/derived/{SHA}/chunks.json"]
    # A second store on the same folder (another worker) sees the same objects.
    head = FilesystemObjectStore(fs_store.root).head(key)
    assert head is not None
    assert dict(head.metadata) == {"n": "2"}


def test_filesystem_failed_write_keeps_the_old_object(
    fs_store: FilesystemObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = content_key("acme", SHA)
    fs_store.put_bytes(key, b"old", {"v": "old"})
    source = tmp_path / "big.bin"
    source.write_bytes(b"new" * 100_000)

    def disk_full(src: IO[bytes], dst: IO[bytes], length: int = 0) -> None:
        dst.write(src.read(1000))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", disk_full)
    with pytest.raises(TransientError):
        fs_store.upload_file(key, source, {"v": "new"})
    assert fs_store.get_bytes(key) == b"old"
    head = fs_store.head(key)
    assert head is not None
    assert dict(head.metadata) == {"v": "old"}
    leftovers = [p.name for p in fs_store.root.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_filesystem_permission_errors_are_permanent(
    fs_store: FilesystemObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    fs_store.root.mkdir(parents=True)
    with pytest.raises(PermanentError) as caught:
        fs_store.get_bytes(content_key("acme", SHA))
    assert not isinstance(caught.value, NotFoundError)


def test_filesystem_upload_streams_without_growing_memory(
    fs_store: FilesystemObjectStore, tmp_path: Path
) -> None:
    source = tmp_path / "large.bin"
    chunk = os.urandom(1024 * 1024)
    with source.open("wb") as handle:
        for _ in range(24):
            handle.write(chunk)
    tracemalloc.start()
    try:
        info = fs_store.upload_file(content_key("acme", SHA), source, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == 24 * 1024 * 1024
    assert peak < 4 * 1024 * 1024  # a copy buffer, not the 24 MB file
    with fs_store.open(content_key("acme", SHA)) as handle:
        assert sum(len(block) for block in _blocks(handle)) == info.size


def _blocks(handle: IO[bytes]) -> Iterator[bytes]:
    while block := handle.read(1024 * 1024):
        yield block


def test_list_objects_gives_every_key_under_a_prefix_with_size_and_time(
        store: ObjectStore) -> None:
    from adapters.ports import ObjectListing

    assert isinstance(store, ObjectListing)
    keys = [content_key("acme", SHA), derived_key("acme", SHA, "chunks.json"),
            "acme/incoming/upload-1", content_key("acme-eu", SHA)]
    for key in keys:
        store.put_bytes(key, b"hello", {"name": "a.txt"})

    listed = {item.key: item for item in store.list_objects("acme/")}

    assert sorted(listed) == sorted(keys[:3])  # not another tenant's, not the sidecars
    assert {item.size for item in listed.values()} == {5}
    assert all(item.modified.tzinfo is not None for item in listed.values())
    assert list(store.list_objects("nobody/")) == []
