"""Where return-label files live: a small key/value protocol and its local-disk form.

Events carry a URI to each file (`return.label_generated`, docs/labels.md), so a store turns a
name into bytes at rest plus a URI a consumer can open. `FileLabelStore` is the default,
rooted at `AFTERSALES_LABEL_DIR` and answering `file://` URIs.

An S3-compatible store implements the same protocol without a temp-file dance, because an
object PUT is already all-or-nothing: `put` is `put_object(Bucket=b, Key=prefix + name,
Body=data, ContentType=...)` and returns `s3://b/prefix/name` (or a presigned https URL
when consumers are outside the cloud account; then `uri` must re-sign, since presigned
URLs expire); `get` is `get_object` returning None on `NoSuchKey`; `exists` is
`head_object`. Names stay flat and safe, so they are valid keys everywhere.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path
from typing import Protocol

# Names are flat, made by the label code from hashes and sanitised ids: nothing that could
# climb out of the root ("..", "/") or hide among temp files (leading ".").
_SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")


class LabelStore(Protocol):
    """Immutable-by-convention blobs: a name is written with the same bytes every time."""

    def put(self, name: str, data: bytes) -> str:
        """Store `data` under `name` atomically and return its URI.

        Readers see either no file or the whole file, never a part. Writing the same name
        with the same bytes again is harmless.
        """
        ...

    def get(self, name: str) -> bytes | None:
        """The bytes stored under `name`, or None."""
        ...

    def uri(self, name: str) -> str:
        """The URI `put` returns (or would return) for `name`."""
        ...

    def exists(self, name: str) -> bool:
        """Whether a complete file is stored under `name`."""
        ...


class UnsafeLabelName(ValueError):
    """A name that is not a flat, safe file name: a programming error, never retried."""


def check_name(name: str) -> str:
    if not _SAFE_NAME_RE.match(name) or ".." in name:
        raise UnsafeLabelName(f"unsafe label file name: {name!r}")
    return name


class FileLabelStore:
    """Files in one directory, each written by temp file + fsync + os.replace.

    A crash part-way leaves at most a hidden `.<name>.<random>.tmp` file, never a partial
    file under the final name; a failed put removes its temp file itself.
    """

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()

    def _path(self, name: str) -> Path:
        path = self.root / check_name(name)
        if path.parent != self.root:  # belt and braces: check_name already forbids this
            raise UnsafeLabelName(f"label file name escapes the store: {name!r}")
        return path

    def put(self, name: str, data: bytes) -> str:
        path = self._path(name)
        tmp = self.root / f".{name}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._fsync_dir()
        return path.as_uri()

    def _fsync_dir(self) -> None:
        # The rename is only durable once the directory entry is: the event that follows
        # hands the URI to consumers, so the file must survive a power cut after it.
        if os.name != "posix":  # pragma: no cover - directories cannot be opened on Windows
            return
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def get(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None

    def uri(self, name: str) -> str:
        return self._path(name).as_uri()

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()


class MemoryLabelStore:
    """In-memory fake for service tests; counts writes so idempotency can be asserted."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.puts = 0

    def put(self, name: str, data: bytes) -> str:
        self.files[check_name(name)] = bytes(data)
        self.puts += 1
        return self.uri(name)

    def get(self, name: str) -> bytes | None:
        return self.files.get(check_name(name))

    def uri(self, name: str) -> str:
        return f"memory://labels/{check_name(name)}"

    def exists(self, name: str) -> bool:
        return check_name(name) in self.files
