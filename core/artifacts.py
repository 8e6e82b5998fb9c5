"""Where generators leave files for dispatchers: the artifact store (staging area).

The local folder serves one process (`goreports run`) or pods sharing a volume; an S3-compatible
store (goreports.core.artifacts_s3) serves dispatchers in other pods. Artifacts are keyed by
report uid and file name; a name can never escape its report's folder.
"""
from __future__ import annotations

import abc
import asyncio
import errno
import hashlib
import mimetypes
import os
import re
import shutil
from pathlib import Path

from goreports.core.errors import PermanentError
from goreports.proto import events_pb2


_CONTROL = re.compile(r"[\x00-\x1f]")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# The mode a new file gets here (read once, at import, before any thread runs).
_FILE_MODE = 0o666 & ~_umask()


def safe_name(name: str) -> str:
    """A file name that stays inside its folder: no separators, no dot-dot, no control chars."""
    if (not name or name in {".", ".."} or "/" in name or "\\" in name or "\x00" in name
            or name.startswith(".") or _CONTROL.search(name) or len(name) > 255):
        raise PermanentError(f"artifact name {name!r} is not a plain file name "
                             f"(no '/', '\\\\', leading '.', or control characters)",
                             reason="InvalidArtifactName")
    return name


def content_type_for(name: str) -> str:
    known = {".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
             ".csv": "text/csv", ".html": "text/html", ".json": "application/json"}
    ext = os.path.splitext(name)[1].lower()
    return known.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def file_digest(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


class ArtifactStore(abc.ABC):
    @abc.abstractmethod
    async def put(self, uid: str, name: str, source: Path,
                  content_type: str | None = None) -> events_pb2.Artifact:
        """Store `source` as the report's artifact `name` (atomically: all or nothing)."""

    async def take(self, uid: str, name: str, source: Path,
                   content_type: str | None = None) -> events_pb2.Artifact:
        """`put` for a file the caller hands over and never touches again (a generator's
        finished temporary file): a store may move it rather than copy it."""
        return await self.put(uid, name, source, content_type)

    @abc.abstractmethod
    async def fetch(self, uid: str, name: str, work_dir: Path) -> Path:
        """A local path with the artifact's bytes (downloaded into work_dir if remote)."""

    @abc.abstractmethod
    async def stat(self, uid: str, name: str) -> events_pb2.Artifact: ...

    @abc.abstractmethod
    async def delete_report(self, uid: str) -> None: ...


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, uid: str, name: str) -> Path:
        return self.root / safe_name(uid) / safe_name(name)

    async def put(self, uid: str, name: str, source: Path,
                  content_type: str | None = None) -> events_pb2.Artifact:
        target = self._path(uid, name)
        return await asyncio.to_thread(self._put, source, target, name, content_type)

    async def take(self, uid: str, name: str, source: Path,
                   content_type: str | None = None) -> events_pb2.Artifact:
        target = self._path(uid, name)
        return await asyncio.to_thread(self._take, source, target, name, content_type)

    def _take(self, source: Path, target: Path, name: str,
              content_type: str | None) -> events_pb2.Artifact:
        """A rename on the same file system (atomic, and no second file to create: creating
        files is a large part of a small report's cost); a copy across file systems."""
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(source, _FILE_MODE)  # as a copy would be (a temporary file is 0600)
            os.replace(source, target)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            return self._put(source, target, name, content_type)
        size, sha = file_digest(target)
        return events_pb2.Artifact(name=name, location=target.resolve().as_uri(), size=size,
                                   sha256=sha, content_type=content_type or content_type_for(name))

    def _put(self, source: Path, target: Path, name: str,
             content_type: str | None) -> events_pb2.Artifact:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        size, sha = file_digest(target)
        return events_pb2.Artifact(name=name, location=target.resolve().as_uri(), size=size,
                                   sha256=sha, content_type=content_type or content_type_for(name))

    async def fetch(self, uid: str, name: str, work_dir: Path) -> Path:
        path = self._path(uid, name)
        if not path.is_file():
            raise PermanentError(f"artifact {name!r} of report {uid} is not in the store at "
                                 f"{path.parent}", reason="ArtifactMissing")
        return path

    async def stat(self, uid: str, name: str) -> events_pb2.Artifact:
        path = await self.fetch(uid, name, self.root)
        size, sha = await asyncio.to_thread(file_digest, path)
        return events_pb2.Artifact(name=name, location=path.resolve().as_uri(), size=size,
                                   sha256=sha, content_type=content_type_for(name))

    async def delete_report(self, uid: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.root / safe_name(uid), True)
