"""The local dispatcher: atomic, idempotent copies that never leave the target folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from goreports.core.errors import PermanentError, TemporaryError
from goreports.proto import tasks_pb2
from goreports.workers.dispatchers import local
from goreports.workers.dispatchers.local import dispatch_local
from goreports.workers.stage import StageContext

from unit.workers.stagekit import UID, make_ctx


async def stage_file(ctx: StageContext, tmp_path: Path, name: str, data: bytes) -> None:
    src = tmp_path / f"src-{name}"
    src.write_bytes(data)
    await ctx.artifacts.put(UID, name, src)


def task(path: Path, *names: str) -> tasks_pb2.LocalDispatcher:
    return tasks_pb2.LocalDispatcher(path=str(path), artifacts=[{"name": n} for n in names])


async def test_delivers_atomically_and_idempotently(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "deliver")
    await stage_file(ctx, tmp_path, "sales.xlsx", b"xlsx bytes")
    await stage_file(ctx, tmp_path, "summary.html", b"<h1>hi</h1>")
    out = tmp_path / "out" / "nested"
    first = await dispatch_local(task(out, "sales.xlsx", "summary.html"), ctx)
    assert (out / "sales.xlsx").read_bytes() == b"xlsx bytes"
    [xlsx, html] = first.artifacts
    assert xlsx.location == (out / "sales.xlsx").resolve().as_uri()
    assert xlsx.size == 10 and len(xlsx.sha256) == 64 and html.content_type == "text/html"
    mtime = os.stat(out / "sales.xlsx").st_mtime_ns
    second = await dispatch_local(task(out, "sales.xlsx", "summary.html"), ctx)
    assert list(second.artifacts) == list(first.artifacts)
    assert os.stat(out / "sales.xlsx").st_mtime_ns == mtime  # same bytes: left alone
    assert sorted(p.name for p in out.iterdir()) == ["sales.xlsx", "summary.html"]


async def test_a_failed_copy_leaves_the_old_file_whole(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_ctx(tmp_path, "deliver")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sales.xlsx").write_bytes(b"old report")
    await stage_file(ctx, tmp_path, "sales.xlsx", b"new report" * 1000)

    def broken_copy(src, dst, length=0):  # type: ignore[no-untyped-def]
        dst.write(src.read(5))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local.shutil, "copyfileobj", broken_copy)
    with pytest.raises(TemporaryError, match="No space left"):
        await dispatch_local(task(out, "sales.xlsx"), ctx)
    assert (out / "sales.xlsx").read_bytes() == b"old report"
    assert [p.name for p in out.iterdir()] == ["sales.xlsx"]  # no temporary file left
    monkeypatch.undo()
    await dispatch_local(task(out, "sales.xlsx"), ctx)
    assert (out / "sales.xlsx").read_bytes() == b"new report" * 1000


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/b.txt", "..", ".hidden",
                                  "a\\b.txt", "nul\x00.txt"])
async def test_refuses_names_that_escape(tmp_path: Path, name: str) -> None:
    ctx = make_ctx(tmp_path, "deliver")
    with pytest.raises(PermanentError, match="plain file name"):
        await dispatch_local(task(tmp_path / "out", name), ctx)
    with pytest.raises(PermanentError):
        local.target_path(tmp_path / "out", name)


def test_refuses_a_symlink_out_of_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.csv").symlink_to(tmp_path / "elsewhere.csv")
    with pytest.raises(PermanentError, match="outside"):
        local.target_path(out, "report.csv")
