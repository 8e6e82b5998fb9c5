"""The `jwt` validator stage on the in-process bus: token sources, filter and deny modes."""
from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import jwt
import pytest

from goreports.core import values
from goreports.core.bus.memory import MemoryBus
from goreports.core.datasets import DatasetReader
from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.workers.stage import StageContext
from goreports.workers.validators.jwt import validate_jwt

from unit.workers.stagekit import columns, feed, make_ctx, output

SECRET = "unit-test-secret-0123456789abcdef-0123"
COLS = columns(("id", values.INTEGER), ("tenant_id", values.STRING), ("amount", values.DECIMAL))
ROWS = [[i, "acme" if i % 3 else "globex", Decimal(i) / 4] for i in range(1, 301)]


def token(**extra: Any) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "alice", "tenant": "acme", "iat": now, "exp": now + 600, **extra},
                      SECRET, "HS256")


def credentials(tmp_path: Path, name: str, files: dict[str, str]) -> None:
    folder = tmp_path / "credentials" / name
    folder.mkdir(parents=True, exist_ok=True)
    for k, v in files.items():
        (folder / k).write_text(v)


async def read(bus: MemoryBus, name: str) -> list[list[Any]]:
    stream = bus.keys.data("uid-0001", name, "validate")
    rd = DatasetReader(bus, stream, dataset=name, reader="check", wait_timeout=5)
    await rd.open()
    return [row async for row in rd.rows_iter()]


async def setup(tmp_path: Path, **task: Any) -> tuple[StageContext, tasks_pb2.JwtValidator]:
    ctx = make_ctx(tmp_path, "validate", batch_rows=50)
    credentials(tmp_path, "jwt-key", {"secret": SECRET + "\n"})
    t = tasks_pb2.JwtValidator(key_credentials_id="jwt-key", algorithms=["HS256"],
                               rules=[tasks_pb2.RowRule(name="same-tenant", column="tenant_id",
                                                        claim="tenant")], **task)
    for name in ("orders", "refunds"):
        t.inputs.append(await feed(ctx.bus, name, COLS, ROWS, batch_rows=40))
        t.outputs.append(output(ctx.bus, name, readers=["check"], producer="validate"))
    return ctx, t


async def test_filter_drops_other_tenants(tmp_path: Path) -> None:
    ctx, task = await setup(tmp_path, token=token(), mode="filter")
    result = await validate_jwt(task, ctx)
    kept = [r for r in ROWS if r[1] == "acme"]
    assert result.rows == 2 * len(kept) == 400
    assert "200 dropped" in result.message and "orders 100" in result.message
    assert await read(ctx.bus, "orders") == kept
    assert await read(ctx.bus, "refunds") == kept


async def test_token_from_credentials_and_list_claim(tmp_path: Path) -> None:
    ctx, task = await setup(tmp_path, token_credentials_id="caller")
    credentials(tmp_path, "caller", {"token": token(tenant=["acme", "globex"]) + "\n"})
    result = await validate_jwt(task, ctx)
    assert result.rows == 600 and "0 dropped" in result.message


async def test_deny_fails_on_first_foreign_row(tmp_path: Path) -> None:
    ctx, task = await setup(tmp_path, token=token(), mode="deny")
    with pytest.raises(PermanentError) as e:
        await validate_jwt(task, ctx)
    assert e.value.reason == "AccessDenied"
    assert "row 3 of dataset" in str(e.value) and "'same-tenant'" in str(e.value)
    assert "globex" not in str(e.value)


async def test_deny_passes_when_every_row_is_allowed(tmp_path: Path) -> None:
    ctx, task = await setup(tmp_path, token=token(tenant=["globex", "acme"]), mode="deny")
    assert (await validate_jwt(task, ctx)).rows == 600


async def test_bad_token_fails_before_any_output(tmp_path: Path) -> None:
    expired = token(exp=int(time.time()) - 3600, iat=int(time.time()) - 4000)
    ctx, task = await setup(tmp_path, token=expired)
    with pytest.raises(PermanentError) as e:
        await validate_jwt(task, ctx)
    assert e.value.reason == "TokenExpired" and expired not in str(e.value)
    stream = ctx.bus.keys.data("uid-0001", "orders", "validate")
    assert await ctx.bus.stream_read(stream, "0", 10, 0) == []  # nothing written


async def test_missing_column_names_rule_and_dataset(tmp_path: Path) -> None:
    ctx, task = await setup(tmp_path, token=token())
    task.rules[0].column = "tenant"
    with pytest.raises(PermanentError) as e:
        await validate_jwt(task, ctx)
    assert e.value.reason == "UnknownColumn" and "'same-tenant'" in str(e.value)


async def test_configuration_errors(tmp_path: Path) -> None:
    ctx, task = await setup(tmp_path)  # no token at all
    with pytest.raises(PermanentError, match="no token"):
        await validate_jwt(task, ctx)
    ctx, task = await setup(tmp_path, token=token(), mode="audit")
    with pytest.raises(PermanentError, match="mode"):
        await validate_jwt(task, ctx)
    ctx, task = await setup(tmp_path, token=token())
    task.key_credentials_id = "nope"
    with pytest.raises(PermanentError) as e:
        await validate_jwt(task, ctx)
    assert e.value.reason == "CredentialsNotFound"


async def test_token_of_another_tenant_than_the_caller_is_refused(tmp_path: Path) -> None:
    ctx, task = await setup(tmp_path, token=token(tenant="globex"), mode="filter",
                            caller_tenant="acme")
    with pytest.raises(PermanentError) as e:
        await validate_jwt(task, ctx)
    assert e.value.reason == "AccessDenied" and "tenant" in str(e.value)
    assert "globex" not in str(e.value)  # no claim values in errors


async def test_token_of_the_callers_tenant_passes(tmp_path: Path) -> None:
    ctx, task = await setup(tmp_path, token=token(tenant=["acme", "initech"]), mode="filter",
                            caller_tenant="acme")
    assert (await validate_jwt(task, ctx)).rows > 0
