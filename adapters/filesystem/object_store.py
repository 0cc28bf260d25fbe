"""The ObjectStore port on a local directory: atomic writes, streamed uploads, sidecar metadata.

Layout under ``root``: an object's bytes live at ``root/<key>`` and its metadata in a JSON
sidecar at ``root/.meta/<key>.json``. Every file is written to a temporary file in the same
directory, flushed, fsynced and moved into place with :func:`os.replace`, so a reader sees the
old object or the new one, never a part. Key segments may not start with a dot: that keeps keys
clear of the ``.meta`` tree and of the temporary files.
"""

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO

from adapters.ports import ListedObject, ObjectInfo
from domain.errors import NotFoundError, PermanentError, TransientError

_META_DIR = ".meta"
_COPY_BUFFER = 1024 * 1024
_MAX_KEY_LENGTH = 1024

#: errno values that may pass when the same call is tried again later.
_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EIO,
        errno.EAGAIN,
        errno.EBUSY,
        errno.EINTR,
        errno.EMFILE,
        errno.ENFILE,
        errno.ENOMEM,
        errno.ETIMEDOUT,
        errno.ESTALE,
        errno.ENOLCK,
        errno.ETXTBSY,
    }
)
#: errno values that trying again cannot fix.
_PERMANENT_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.EEXIST,
        errno.ENOTEMPTY,
        errno.EINVAL,
        errno.ELOOP,
        errno.EFBIG,
        errno.EXDEV,
    }
)


def translate_os_error(exc: OSError, action: str) -> TransientError | PermanentError:
    """The domain error for an OS error met while doing ``action`` (a short phrase).

    A missing file becomes NotFoundError; full disks, I/O errors and exhausted descriptors are
    transient; permissions, bad names and file-versus-directory clashes are permanent. An errno
    not known either way is treated as transient, so the pipeline's bounded retries decide.
    """
    detail = f"{action}: {exc.strerror or exc}"
    if exc.errno == errno.ENOENT:
        return NotFoundError(detail)
    if exc.errno in _PERMANENT_ERRNOS:
        return PermanentError(detail)
    if exc.errno in _TRANSIENT_ERRNOS:
        return TransientError(detail)
    return TransientError(detail)


def validate_key(key: str) -> list[str]:
    """The key's segments, or PermanentError when the key could name a file outside the store.

    Rejected: empty keys, absolute keys, backslashes, NUL, empty segments (``a//b``, a trailing
    slash), ``.``/``..`` and any segment starting with a dot (reserved for the store's own files).
    """
    if not isinstance(key, str) or not key:
        raise PermanentError("object key must be a non-empty string")
    if len(key) > _MAX_KEY_LENGTH:
        raise PermanentError(f"object key longer than {_MAX_KEY_LENGTH} characters")
    if "\x00" in key or "\\" in key:
        raise PermanentError(f"object key {key!r} contains NUL or a backslash")
    if key.startswith("/"):
        raise PermanentError(f"object key {key!r} is absolute")
    segments = key.split("/")
    for segment in segments:
        if not segment:
            raise PermanentError(f"object key {key!r} has an empty segment")
        if segment.startswith("."):
            raise PermanentError(f"object key {key!r} has a segment starting with a dot")
        if len(segment.encode()) > 255:
            raise PermanentError(f"object key {key!r} has a segment longer than 255 bytes")
    return segments


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _atomic_writer(target: Path) -> Iterator[IO[bytes]]:
    """A file object whose content replaces ``target`` atomically when the block ends cleanly.

    The temporary file sits next to ``target`` (same file system, so the rename is atomic) and
    is removed if the block raises.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


class FilesystemObjectStore:
    """Objects as files under ``root``; see the module docstring for the layout."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    @property
    def root(self) -> Path:
        return self._root

    def _paths(self, key: str) -> tuple[Path, Path]:
        """The data and sidecar paths of a valid key, checked to stay inside the root."""
        segments = validate_key(key)
        root = self._root.resolve()
        data = root.joinpath(*segments)
        meta = root.joinpath(_META_DIR, *segments[:-1], f"{segments[-1]}.json")
        # Defence in depth: a symlink planted inside the root must not lead outside it.
        for path in (data, meta):
            if not path.resolve().is_relative_to(root):
                raise PermanentError(f"object key {key!r} resolves outside the store")
        return data, meta

    def upload_file(self, key: str, path: Path, metadata: Mapping[str, str]) -> ObjectInfo:
        data_path, meta_path = self._paths(key)
        meta = _clean_metadata(metadata)
        try:
            source = open(path, "rb")  # noqa: SIM115 - closed below, errors translated
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise PermanentError(f"upload source {path} does not exist") from exc
            raise translate_os_error(exc, f"open upload source {path}") from exc
        try:
            with source, _atomic_writer(data_path) as target:
                shutil.copyfileobj(source, target, _COPY_BUFFER)
                size = target.tell()
            self._write_meta(meta_path, meta)
        except OSError as exc:
            raise translate_os_error(exc, f"write object {key}") from exc
        return ObjectInfo(key=key, size=size, metadata=meta)

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str]) -> ObjectInfo:
        data_path, meta_path = self._paths(key)
        meta = _clean_metadata(metadata)
        try:
            with _atomic_writer(data_path) as target:
                target.write(data)
            self._write_meta(meta_path, meta)
        except OSError as exc:
            raise translate_os_error(exc, f"write object {key}") from exc
        return ObjectInfo(key=key, size=len(data), metadata=meta)

    @staticmethod
    def _write_meta(meta_path: Path, meta: dict[str, str]) -> None:
        # Written after the bytes: a crash in between leaves the new bytes with the old (or no)
        # metadata, never metadata pointing at bytes that were not written.
        with _atomic_writer(meta_path) as target:
            target.write(json.dumps(meta, sort_keys=True).encode())

    def open(self, key: str) -> BinaryIO:
        data_path, _ = self._paths(key)
        try:
            return open(data_path, "rb")  # the caller closes it
        except OSError as exc:
            raise _read_error(exc, key) from exc

    def get_bytes(self, key: str) -> bytes:
        data_path, _ = self._paths(key)
        try:
            return data_path.read_bytes()
        except OSError as exc:
            raise _read_error(exc, key) from exc

    def head(self, key: str) -> ObjectInfo | None:
        data_path, meta_path = self._paths(key)
        try:
            stat = data_path.stat()
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None  # a prefix of the key is an object: the key itself does not exist
        except OSError as exc:
            raise translate_os_error(exc, f"stat object {key}") from exc
        if not data_path.is_file():
            return None  # a directory: the key is a prefix of other keys, not an object
        return ObjectInfo(key=key, size=stat.st_size, metadata=self._read_meta(meta_path, key))

    @staticmethod
    def _read_meta(meta_path: Path, key: str) -> dict[str, str]:
        try:
            loaded = json.loads(meta_path.read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except OSError as exc:
            raise translate_os_error(exc, f"read metadata of {key}") from exc
        except ValueError as exc:
            raise PermanentError(f"metadata of {key} is not valid JSON") from exc
        if not isinstance(loaded, dict):
            raise PermanentError(f"metadata of {key} is not a JSON object")
        return {str(k): str(v) for k, v in loaded.items()}

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        """Every object whose key starts with ``prefix`` (the sidecars and temporary files,
        whose names start with a dot, are not objects)."""
        root = self._root.resolve()
        start = root.joinpath(*[part for part in prefix.split("/")[:-1] if part])
        if not start.is_dir():
            return
        try:
            for folder, dirs, files in os.walk(start):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in files:
                    if name.startswith("."):
                        continue
                    path = Path(folder, name)
                    key = path.relative_to(root).as_posix()
                    if key.startswith(prefix):
                        stat = path.stat()
                        modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                        yield ListedObject(key=key, size=stat.st_size, modified=modified)
        except FileNotFoundError:
            return  # removed while listing
        except OSError as exc:
            raise translate_os_error(exc, f"list objects under {prefix}") from exc

    def delete_file(self, key: str) -> None:
        data_path, meta_path = self._paths(key)
        for path in (data_path, meta_path):
            try:
                path.unlink()
            except (FileNotFoundError, NotADirectoryError):
                pass
            except IsADirectoryError:
                pass  # the key is a prefix of other keys, not an object: nothing to delete
            except OSError as exc:
                if exc.errno == errno.EISDIR or (exc.errno == errno.EPERM and path.is_dir()):
                    continue
                raise translate_os_error(exc, f"delete object {key}") from exc


def _clean_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    cleaned: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise PermanentError("object metadata must map strings to strings")
        cleaned[name] = value
    return cleaned


def _read_error(exc: OSError, key: str) -> TransientError | PermanentError:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
        return NotFoundError(f"no object {key}")
    return translate_os_error(exc, f"read object {key}")
