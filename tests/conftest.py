"""Shared fixtures: one real redis-server per test session, a clean database per test."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

# Test helpers import as `support.*`: the tests folder goes on sys.path, never the repository
# root (its `operator/` folder would shadow the standard library's `operator` module).
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from goreports.core.bus.base import Bus  # noqa: E402
from goreports.core.bus.memory import MemoryBus  # noqa: E402
from goreports.core.bus.redis import RedisBus  # noqa: E402
from goreports.core.keys import Keys  # noqa: E402
from support.servers import RedisServer  # noqa: E402
from support.secret_scan import pytest_sessionfinish  # noqa: E402,F401  (greps the suite's outputs for secrets)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
async def bus(redis_client: aioredis.Redis) -> AsyncIterator[RedisBus]:
    """A RedisBus on the session's redis-server, emptied for this test."""
    b = RedisBus(redis_client, Keys("goreports"))
    yield b


@pytest.fixture(params=["memory", "redis"])
async def either_bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    """The in-process bus, then a RedisBus on the session's redis-server: one contract, two
    implementations."""
    if request.param == "memory":
        yield MemoryBus(Keys("t"))
        return
    server = request.getfixturevalue("redis_server")
    host, port = server.addr.split(":")
    client = aioredis.Redis(host=host, port=int(port))
    await client.flushall()
    yield RedisBus(client, Keys("t"))
    await client.aclose()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    host, port = redis_server.addr.split(":")
    client = aioredis.Redis(host=host, port=int(port))
    await client.flushall()
    yield client
    await client.aclose()
