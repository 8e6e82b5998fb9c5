"""A pytest plugin: at the end of the session, grep every file the suite wrote under pytest's
basetemp for the test secrets' values (support.secrets.ALL) and fail the session on a hit.

Why at the session's end and over the whole basetemp: worker and operator logs, generated
reports, captured streams and status dumps of *every* test land there (tmp_path), so one scan
checks the outputs of the whole suite, not only of the tests written for secrets.

A file whose whole content is one secret value (plus line breaks) is a credentials file — what
a mounted Secret looks like — and is the one place a secret is meant to be; it is skipped.
Binary files are scanned too (a secret inside an .xlsx's XML would be compressed, so generated
workbooks are unzipped member by member).
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from support import secrets

MAX_BYTES = 64 * 1024 * 1024  # bigger files (benchmark outputs) are scanned in their first part
REPORT_ENV = "GOREPORTS_SECRET_SCAN_REPORT"


def _is_credentials_file(data: bytes) -> bool:
    return data.strip(b"\r\n") in {v.encode() for v in secrets.ALL.values()}


def _zip_members(path: Path) -> bytes:
    try:
        with zipfile.ZipFile(path) as z:
            parts = []
            for name in z.namelist():
                with z.open(name) as member:  # bounded: a 1M-row sheet is hundreds of MB
                    parts.append(member.read(MAX_BYTES))
            return b"\n".join(parts)
    except (zipfile.BadZipFile, OSError, RuntimeError):
        return b""


def scan_tree(root: Path) -> list[tuple[Path, list[str]]]:
    """(file, secret names) for every file under `root` that holds a secret's value."""
    hits: list[tuple[Path, list[str]]] = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            try:
                if path.is_symlink() or not path.is_file():
                    continue
                with open(path, "rb") as f:
                    data = f.read(MAX_BYTES)
            except OSError:
                continue
            if _is_credentials_file(data):
                continue
            if data[:4] == b"PK\x03\x04":
                data += _zip_members(path)
            found = secrets.found_in(data)
            if found:
                hits.append((path, found))
    return hits


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    factory = getattr(session.config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None)  # None: no test used tmp_path, nothing written
    if base is None:
        return
    hits = scan_tree(Path(base))
    lines = [f"{p}: {', '.join(names)}" for p, names in hits]
    report = os.environ.get(REPORT_ENV)
    if report:
        Path(report).write_text("\n".join(lines) + ("\n" if lines else ""))
    if hits:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = ("secret scan: test secret values found in files the suite wrote under "
                f"{base}:\n  " + "\n  ".join(lines))
        if reporter is not None:
            reporter.write_line(text, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
