"""Secrets never appear in status, events, logs or the dead-letter stream.

A representative set of secret-bearing reports — a MariaDB password from a credentials folder,
SMTP AUTH over STARTTLS, S3 keys, a webhook signing secret and bearer token, a JWT key — run
through a real worker process (log level DEBUG, every line captured), including failing ones
(wrong password, unreachable server, wrong signing secret, wrong JWT key, a poison job). Then
everything the platform wrote is grepped for every value in support.secrets: the worker's log,
every Redis stream (events, dead letters, jobs, datasets) and key, and the folded statuses.
The e2e test in tests/security/test_secrets_e2e.py does the same for the operator, the
ReportRequest status and the Kubernetes Events; support.secret_scan greps the whole suite's files.
"""
from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import jwt
import pytest

from goreports.core import compiler
from security._fleet import Fleet, Outcome, report, sqlite_step
from support import s3 as s3_support
from support import secrets
from support import smtp as smtp_support
from support.httpd import HookServer
from support.mariadb import MariaDB, mariadb  # noqa: F401  (session fixture)
from support.s3 import MotoServer, moto_server  # noqa: F401  (session fixture)
from support.servers import free_port
from support.smtp import SmtpServer, smtp_starttls_server  # noqa: F401  (fixture)

DB = "secretsdb"


def test_the_secret_values_match_the_test_servers() -> None:
    assert secrets.SMTP_PASSWORD == smtp_support.PASSWORD
    assert secrets.S3_SECRET_KEY == s3_support.SECRET_KEY
    assert secrets.S3_ACCESS_KEY == s3_support.ACCESS_KEY
    assert len(set(secrets.ALL.values())) == len(secrets.ALL)


def _write(folder: Path, **files: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        (folder / name.replace("_", "-")).write_text(value + "\n")
    return folder.name


@pytest.fixture
def creds(fleet: Fleet, mariadb: MariaDB, smtp_starttls_server: SmtpServer  # noqa: F811
          ) -> Iterator[Path]:
    root = fleet.credentials_dir
    mariadb.create_database(DB)
    mariadb.execute_sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); "
                        "INSERT INTO t VALUES (1, 'a'), (2, 'b');", db=DB)
    mariadb.create_user(secrets.MARIADB_USER, secrets.MARIADB_PASSWORD, grants="SELECT")
    mariadb.write_credentials(root, "s-db", user=secrets.MARIADB_USER,
                              password=secrets.MARIADB_PASSWORD)
    mariadb.write_credentials(root, "s-db-wrong", user=secrets.MARIADB_USER,
                              password=secrets.WRONG_PASSWORD)
    down = mariadb.write_credentials(root, "s-db-down", user=secrets.MARIADB_USER,
                                     password=secrets.MARIADB_PASSWORD)
    (down / "port").write_text(f"{free_port()}\n")
    shutil.copytree(smtp_starttls_server.credentials_dir / smtp_support.CREDENTIALS_ID,
                    root / "s-smtp", dirs_exist_ok=True)
    shutil.copytree(root / "s-smtp", root / "s-smtp-wrong", dirs_exist_ok=True)
    (root / "s-smtp-wrong" / "password").write_text(secrets.WRONG_PASSWORD + "\n")
    _write(root / "s-s3", access_key_id=secrets.S3_ACCESS_KEY,
           secret_access_key=secrets.S3_SECRET_KEY)
    _write(root / "s-hook", hmac_secret=secrets.WEBHOOK_SECRET, token=secrets.WEBHOOK_TOKEN)
    _write(root / "s-hook-wrong", hmac_secret=secrets.WRONG_PASSWORD, token=secrets.WEBHOOK_TOKEN)
    _write(root / "s-jwt-key", secret=secrets.JWT_KEY)
    claims = {"aud": "goreports", "texts": ["plain text"], "exp": int(time.time()) + 3600}
    _write(root / "s-caller", token=jwt.encode(claims, secrets.JWT_KEY, algorithm="HS256"))
    _write(root / "s-caller-forged", token=jwt.encode(claims, secrets.WRONG_PASSWORD,
                                                      algorithm="HS256"))
    yield root


def _mysql(cred: str) -> dict[str, Any]:
    return {"name": "collect", "mysql": {"instance": "secrets", "dbName": DB, "credentialsId": cred,
                                         "connectTimeoutSeconds": 2,
                                         "queries": [{"name": "rows", "sql": "SELECT id, v FROM t"}]}}


def _csv() -> dict[str, Any]:
    return {"name": "flat", "csv": {"fileName": "rows.csv", "dataset": "rows"}}


def _mail(server: SmtpServer, cred: str) -> dict[str, Any]:
    return {"name": "mail", "email": {
        "to": ["ann@example.com"], "from": "reports@example.com", "smtpHost": server.host,
        "smtpPort": server.port, "security": "starttls", "credentialsId": cred,
        "timeoutSeconds": 10}}


def _hook(server: HookServer, cred: str) -> dict[str, Any]:
    return {"name": "post", "webhook": {"url": server.url("/hook"), "credentialsId": cred,
                                        "allowHosts": ["127.0.0.1"], "maxRetries": 0,
                                        "sendFile": True}}


def _jwt(caller: str) -> dict[str, Any]:
    return {"name": "check", "jwt": {"tokenCredentialsId": caller, "keyCredentialsId": "s-jwt-key",
                                     "algorithms": ["HS256"], "audience": "goreports",
                                     "mode": "filter",
                                     "rules": [{"name": "own", "column": "txt", "claim": "texts"}]}}


async def test_no_secret_in_logs_streams_status_or_dead_letters(
        fleet: Fleet, creds: Path, smtp_starttls_server: SmtpServer,  # noqa: F811
        moto_server: MotoServer, hostile_db: Path, tmp_path: Path,  # noqa: F811
        record: Any) -> None:
    smtp = smtp_starttls_server
    hook = HookServer(secret=secrets.WEBHOOK_SECRET.encode())
    await hook.start()
    bucket = moto_server.new_bucket("secrets")
    s3_step = {"name": "upload", "s3": {"bucket": bucket, "endpointUrl": moto_server.endpoint,
                                        "region": "us-east-1", "credentialsId": "s-s3",
                                        "presignSeconds": 600}}
    hostile = sqlite_step(hostile_db, "SELECT id, txt FROM hostile ORDER BY id")
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("mysql password", report("s-mysql", _mysql("s-db"), _csv(), _mail(smtp, "s-smtp")),
         "Succeeded"),
        ("mysql wrong password", report("s-mysql-wrong", _mysql("s-db-wrong"), _csv(),
                                        {"name": "d", "local": {"path": str(tmp_path / "o")}}),
         "Failed"),
        ("mysql unreachable", report("s-mysql-down", _mysql("s-db-down"), _csv(),
                                     {"name": "d", "local": {"path": str(tmp_path / "o")}}),
         "Failed"),
        ("smtp wrong password", report("s-smtp-wrong", hostile, _csv(),
                                       _mail(smtp, "s-smtp-wrong")), "Failed"),
        ("s3 keys", report("s-s3", hostile, _csv(), s3_step), "Succeeded"),
        ("webhook secret and token", report("s-hook", hostile, _csv(), _hook(hook, "s-hook")),
         "Succeeded"),
        ("webhook wrong secret", report("s-hook-wrong", hostile, _csv(),
                                        _hook(hook, "s-hook-wrong")), "Failed"),
        ("jwt key", report("s-jwt", hostile, _jwt("s-caller"), _csv(),
                           {"name": "d", "local": {"path": str(tmp_path / "o")}}), "Succeeded"),
        ("jwt forged token", report("s-jwt-forged", hostile, _jwt("s-caller-forged"), _csv(),
                                    {"name": "d", "local": {"path": str(tmp_path / "o")}}),
         "Failed"),
    ]
    outcomes: dict[str, Outcome] = {}
    try:
        for label, doc, phase in cases:
            out = await fleet.run(doc, timeout=90)
            assert out.phase == phase, (label, out.reason, out.error, out.status)
            outcomes[label] = out
        # a poison job of a secret-bearing stage
        head = compiler.compile_report(report("s-poison", _mysql("s-db"), _csv(),
                                              _mail(smtp, "s-smtp")), uid=str(uuid.uuid4()))
        head.task.value = b"\xff\xff\xff poison"
        poison = await fleet.run_chain(head)
        assert poison.phase == "Failed" and poison.reason == "InvalidTask", poison.status
        outcomes["poison job"] = poison
    finally:
        await hook.stop()
    assert len(smtp.messages) == 1 and hook.delivered()

    written = fleet.everything_written()
    assert b'"level": "debug"' in written  # the log was captured at DEBUG
    statuses = json.dumps({k: o.status for k, o in outcomes.items()}).encode()
    events = b"".join(e.SerializeToString() for o in outcomes.values() for e in o.events)
    dead = b"".join(k + v for _, f in fleet.dead_letters() for k, v in f.items())
    assert len(fleet.dead_letters()) >= 5
    for what, data in (("worker log + Redis", written), ("statuses", statuses),
                       ("events", events), ("dead letters", dead)):
        assert secrets.found_in(data) == [], what
    # the failures say what to fix, naming the credentials, not their values
    assert "s-db-wrong" in outcomes["mysql wrong password"].error
    assert "Access denied" in outcomes["mysql wrong password"].error
    record("secrets", "9 secret-bearing reports (MariaDB password, SMTP AUTH, S3 keys, webhook "
           "HMAC secret + bearer token, JWT key), 5 of them failing (wrong password, unreachable "
           "database, wrong signing secret, forged token) + a poison job, one worker at DEBUG",
           f"no secret value in the worker log ({len(written) // 1024} KiB with every Redis "
           f"stream and key), the statuses, the events or the {len(fleet.dead_letters())} dead "
           "letters; outcomes: " + "; ".join(
               f"{k} {o.phase}{' ' + o.reason if o.reason else ''}" for k, o in outcomes.items()))


def test_the_session_scan_finds_a_leak_and_skips_credentials_files() -> None:
    """support.secret_scan (run at the end of every session over pytest's basetemp) must see a
    value in a log line and inside a zipped workbook, and must not flag a credentials file.
    The planted leaks live outside basetemp (the session scan would rightly fail on them)."""
    import tempfile

    from support.secret_scan import scan_tree

    tmp_path = Path(tempfile.mkdtemp(prefix="goreports-scan-"))
    try:
        _planted(tmp_path, scan_tree)
    finally:
        shutil.rmtree(tmp_path)


def _planted(tmp_path: Path, scan_tree: Any) -> None:
    import zipfile

    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "password").write_text(secrets.MARIADB_PASSWORD + "\n")
    assert scan_tree(tmp_path) == []
    (tmp_path / "w.log").write_text(f"connecting with password={secrets.MARIADB_PASSWORD}\n")
    with zipfile.ZipFile(tmp_path / "r.xlsx", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/sharedStrings.xml", f"<si><t>{secrets.JWT_KEY}</t></si>")
    found = {p.name: names for p, names in scan_tree(tmp_path)}
    assert found == {"w.log": ["MARIADB_PASSWORD"], "r.xlsx": ["JWT_KEY"]}
