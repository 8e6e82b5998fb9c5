"""`ArtifactStore.take`: a generator hands its finished file over; the local store renames it
into place (no second file) and falls back to a copy across file systems."""
from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

import pytest

from goreports.core.artifacts import LocalArtifactStore

DATA = b"id,name\r\n1,=cmd\r\n"


def _staged(tmp_path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, suffix=".csv")  # 0600, as a generator's temp file
    os.write(fd, DATA)
    os.close(fd)
    return Path(name)


async def test_take_moves_the_file_into_the_store(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "staging")
    source = _staged(tmp_path, tmp_path / "work")
    inode = source.stat().st_ino
    art = await store.take("uid-1", "report.csv", source, "text/csv")
    target = tmp_path / "staging" / "uid-1" / "report.csv"
    assert not source.exists()
    assert target.stat().st_ino == inode  # renamed, not copied
    assert target.read_bytes() == DATA
    assert (art.size, art.sha256) == (len(DATA), hashlib.sha256(DATA).hexdigest())
    assert art.location == target.resolve().as_uri() and art.content_type == "text/csv"
    # readable like a copied file would be (a dispatcher may run as another user)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


async def test_take_replaces_an_earlier_artifact_of_a_rerun(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "staging")
    await store.put("uid-1", "report.csv", _staged(tmp_path, tmp_path / "work"))
    (tmp_path / "new.csv").write_bytes(b"new\r\n")
    art = await store.take("uid-1", "report.csv", tmp_path / "new.csv")
    assert (tmp_path / "staging" / "uid-1" / "report.csv").read_bytes() == b"new\r\n"
    assert art.size == 5


async def test_take_copies_across_file_systems(tmp_path: Path) -> None:
    # /dev/shm is a tmpfs on Linux: a rename from there fails with EXDEV
    if os.stat("/dev/shm").st_dev == tmp_path.stat().st_dev:
        pytest.fail("/dev/shm and the test's tmp folder are one file system: no EXDEV to test")
    store = LocalArtifactStore(tmp_path / "staging")
    shm = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        source = _staged(tmp_path, shm)
        art = await store.take("uid-1", "report.csv", source)
        assert (tmp_path / "staging" / "uid-1" / "report.csv").read_bytes() == DATA
        assert art.sha256 == hashlib.sha256(DATA).hexdigest()
    finally:
        for p in shm.iterdir():
            p.unlink()
        shm.rmdir()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
