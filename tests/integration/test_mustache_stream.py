"""The mustache generator streams rows from a real Redis: the memory it needs does not grow with
the number of rows (a template whose rows are used only by top-level sections).

Each render runs in a fresh Python process so that its peak RSS is its own; the dataset is
written to Redis by the test beforehand (in chunks)."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import gc
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from goreports.core import values
from goreports.core.bus.redis import RedisBus
from goreports.core.datasets import DatasetWriter
from goreports.core.keys import Keys
from goreports.proto import tasks_pb2
from goreports.workers.generators._mustache_plan import Plan, plan_template
from goreports.workers.generators.mustache import generate_mustache
from support.servers import RedisServer
from unit.workers.stagekit import PRODUCER, UID, columns, make_ctx, ref

pytestmark = pytest.mark.integration

TESTS = Path(__file__).resolve().parents[1]
COLS = columns(("id", values.INTEGER), ("name", values.STRING), ("amount", values.DECIMAL),
               ("day", values.DATE))
TEMPLATE = """<table>
  <caption>{{report.name}}: {{datasets.orders.row_count}} orders</caption>
  {{#orders}}
  <tr><td>{{id}}</td><td>{{name}}</td><td>{{amount}}</td><td>{{day}}</td></tr>
  {{/orders}}
  {{^orders}}
  <tr><td>none</td></tr>
  {{/orders}}
</table>
"""
MB = 1024 * 1024


async def put_orders(bus: RedisBus, rows: int) -> tasks_pb2.DatasetRef:
    """A dataset of `rows` orders on Redis, written in chunks."""
    r = ref(bus, "orders")  # type: ignore[arg-type]
    writer = DatasetWriter(bus, r.stream, dataset="orders", step=PRODUCER, readers=[],
                           columns=COLS, batch_rows=500)
    await writer.start()
    day = dt.date(2024, 1, 1)
    for start in range(0, rows, 10_000):
        await writer.write([[i, f"customer <{i % 97}>", Decimal(i) / 100, day]
                            for i in range(start, min(start + 10_000, rows))])
    await writer.close()
    return r


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def child() -> None:
    """In the child process: render the dataset (argv: redis address, ref hex, folder) and print
    RSS before rendering, peak RSS while rendering and the time taken, as JSON."""
    addr, ref_hex, tmp = sys.argv[1:4]
    data = tasks_pb2.DatasetRef.FromString(bytes.fromhex(ref_hex))

    async def run() -> dict[str, Any]:
        host, port = addr.split(":")
        client = aioredis.Redis(host=host, port=int(port))
        ctx = make_ctx(Path(tmp), "summary", bus=RedisBus(client, Keys()))  # type: ignore[arg-type]
        task = tasks_pb2.MustacheGenerator(file_name="orders.html", template=TEMPLATE)
        task.datasets.append(data)
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from here
        before = _status_kb("VmRSS")
        started = time.perf_counter()
        result = await generate_mustache(task, ctx)
        seconds = time.perf_counter() - started
        await client.aclose()
        return {"rows": result.rows, "seconds": seconds, "before_kb": before,
                "peak_kb": _status_kb("VmHWM")}

    print(json.dumps(asyncio.run(run())))


async def render_in_child(tmp: Path, redis_addr: str, bus: RedisBus, rows: int
                          ) -> dict[str, Any]:
    data = await put_orders(bus, rows)
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from integration.test_mustache_stream import child; child()",
        redis_addr, data.SerializeToString().hex(), str(tmp), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    got: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    assert got["rows"] == rows

    html = tmp / "artifacts" / UID / "orders.html"
    with html.open("rb") as f:
        head = [next(f) for _ in range(3)]
        lines = 3 + sum(1 for _ in f)
    assert head[1] == f"  <caption>sales: {rows} orders</caption>\n".encode()
    assert head[2] == (b"  <tr><td>0</td><td>customer &lt;0&gt;</td><td>0</td>"
                       b"<td>2024-01-01</td></tr>\n")
    assert lines == rows + 3
    return got


async def test_peak_memory_does_not_grow_with_rows(redis_server: RedisServer, bus: RedisBus,
                                                   redis_client: aioredis.Redis,
                                                   tmp_path: Path) -> None:
    assert isinstance(plan_template(TEMPLATE, {}, {"orders"}), Plan)
    small = await render_in_child(tmp_path / "small", redis_server.addr, bus, 20_000)
    await redis_client.flushall()
    large = await render_in_child(tmp_path / "large", redis_server.addr, bus, 200_000)
    for name, got in (("20,000", small), ("200,000", large)):
        print(f"\nmustache {name} rows: peak RSS {got['peak_kb'] / 1024:.1f} MB "
              f"(before rendering {got['before_kb'] / 1024:.1f} MB), "
              f"{got['rows'] / got['seconds']:,.0f} rows/s")
    # Holding 200,000 rows in a model took ~300 MB; streaming stays flat.
    assert large["peak_kb"] < 2 * small["peak_kb"], (small, large)
    growth_small = small["peak_kb"] - small["before_kb"]
    growth_large = large["peak_kb"] - large["before_kb"]
    assert growth_large < growth_small + 16 * 1024, (small, large)  # < the 200k rows' text
