"""The `local` dispatcher: copies a report's artifacts into a folder (`out/` on a laptop, a
mounted volume in a cluster).

Why it is careful: a dispatcher may run twice for one report (at-least-once delivery), and a
reader of the folder must never see half a file. So each file is copied to a temporary file in
the same folder, flushed to disk and renamed over the target (`os.replace` is atomic within a
file system); a target that already holds the same bytes is left alone. Names come from specs,
so each must be a plain file name (`safe_name`) and must still resolve inside the folder after
symlinks are followed.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from pathlib import Path

from goreports.core.errors import PermanentError, TemporaryError
from goreports.proto import events_pb2, tasks_pb2
from goreports.core.artifacts import (LocalArtifactStore, content_type_for, file_digest,
                                         safe_name)
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult


def target_path(folder: Path, name: str) -> Path:
    """Where `name` goes in `folder`; refused if it would land anywhere else."""
    root = folder.resolve()
    target = root / safe_name(name)
    if target.resolve().parent != root:
        raise PermanentError(f"artifact {name!r} would be written outside {folder} "
                             f"(a symlink points elsewhere)", reason="InvalidArtifactName")
    return target


def _copy_atomic(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def deliver(source: Path, folder: Path, name: str) -> events_pb2.Artifact:
    """Copy `source` to `folder/name` atomically unless it already holds the same bytes."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = target_path(folder, name)
        size, sha = file_digest(source)
        same = (target.is_file() and not target.is_symlink()
                and file_digest(target) == (size, sha))
        if not same:
            _copy_atomic(source, target)
    except PermissionError as e:
        raise PermanentError(f"cannot write {name!r} into {folder}: {e}",
                             reason="TargetNotWritable") from None
    except (IsADirectoryError, NotADirectoryError) as e:
        raise PermanentError(f"cannot write {name!r} into {folder}: {e}",
                             reason="TargetInvalid") from None
    except OSError as e:
        raise TemporaryError(f"copying {name!r} into {folder} failed: {e}") from None
    return events_pb2.Artifact(name=name, location=target.as_uri(), size=size, sha256=sha,
                               content_type=content_type_for(name))


@stage("local", channel="dispatchers", task=tasks_pb2.LocalDispatcher)
async def dispatch_local(task: tasks_pb2.LocalDispatcher, ctx: StageContext) -> StageResult:
    if not task.path:
        raise PermanentError("the local dispatcher has no target path", reason="InvalidTask")
    if not task.artifacts:
        raise PermanentError(f"the local dispatcher to {task.path!r} names no artifacts",
                             reason="InvalidTask")
    folder = Path(task.path)
    remote = not isinstance(ctx.artifacts, LocalArtifactStore)
    work = ctx.work_dir.resolve() if remote else None
    delivered = []
    for ref in task.artifacts:
        name = safe_name(ref.name)
        source = await ctx.artifacts.fetch(ctx.report.uid, name, ctx.work_dir)
        try:
            artifact = await asyncio.to_thread(deliver, source, folder, name)
        finally:
            if work is not None and source.resolve().is_relative_to(work):  # our download: drop it
                source.unlink(missing_ok=True)
        delivered.append(artifact)
        ctx.log.info("delivered %s to %s (%d bytes)", name, artifact.location, artifact.size)
    return StageResult(artifacts=delivered, message=f"{len(delivered)} file(s) in {folder}")
