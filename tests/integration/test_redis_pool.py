"""The Redis client every process builds (core.bus.redis.connect) against a real redis-server:
past `REDIS_MAX_CONNECTIONS` commands wait for a free connection instead of failing, which is
what kept a burst of 200 ReportRequests from failing the operator's accept handler."""
from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from goreports.core.bus.redis import connect
from goreports.core.settings import Settings
from support.servers import RedisServer

pytestmark = pytest.mark.integration


async def test_commands_past_the_pool_limit_wait_and_all_succeed(redis_server: RedisServer) -> None:
    client = connect(Settings(redis_addr=redis_server.addr, redis_max_connections=3))
    try:
        # Each command holds its connection for 0.2 s on the server (BLPOP on an empty list),
        # so 12 at once need 4 rounds of 3 connections: they queue, none is refused.
        got = await asyncio.gather(*(client.blpop([f"pool-test-{i}"], timeout=0.2)
                                     for i in range(12)))
        assert got == [None] * 12
        assert client.connection_pool.max_connections == 3
    finally:
        await client.aclose()


async def test_the_default_pool_of_redis_py_refuses_them(redis_server: RedisServer) -> None:
    """Why the blocking pool: the same load on redis-py's own pool fails."""
    host, port = redis_server.addr.split(":")
    client = aioredis.Redis(host=host, port=int(port), max_connections=3)
    try:
        with pytest.raises(RedisConnectionError, match="Too many connections"):
            await asyncio.gather(*(client.blpop([f"pool-test-{i}"], timeout=0.2)
                                   for i in range(12)))
    finally:
        await client.aclose()


async def test_a_wait_past_the_bound_fails_with_a_clear_error(redis_server: RedisServer) -> None:
    client = connect(Settings(redis_addr=redis_server.addr, redis_max_connections=1,
                              redis_pool_wait=0.1))
    try:
        with pytest.raises(RedisConnectionError, match="No connection available"):
            await asyncio.gather(client.blpop(["pool-test-a"], timeout=1),
                                 client.blpop(["pool-test-b"], timeout=1))
    finally:
        await client.aclose()


async def test_a_url_address_gets_the_same_pool(redis_server: RedisServer) -> None:
    client = connect(Settings(redis_addr=f"redis://{redis_server.addr}/0", redis_max_connections=2))
    try:
        assert isinstance(client.connection_pool, aioredis.BlockingConnectionPool)
        assert await client.ping()
    finally:
        await client.aclose()


def test_the_limits_come_from_the_environment() -> None:
    s = Settings.from_env({"REDIS_MAX_CONNECTIONS": "7", "REDIS_POOL_WAIT_SECONDS": "2.5"})
    assert (s.redis_max_connections, s.redis_pool_wait) == (7, 2.5)
    assert Settings.from_env({}).redis_max_connections == 100


async def test_a_restarted_redis_is_reached_again_on_the_same_client() -> None:
    """Pooled connections from before a restart are dead; the next command reconnects (the
    retry redis-py's own Redis() would have, kept with the blocking pool)."""
    server = RedisServer().start()
    client = connect(Settings(redis_addr=server.addr))
    try:
        await asyncio.gather(*(client.set(f"k{i}", i) for i in range(5)))  # 5 pooled connections
        server.stop()
        server.start()  # same port, empty (no persistence)
        assert await client.set("after", 1)
        assert await asyncio.gather(*(client.incr(f"k{i}") for i in range(5))) == [1] * 5
    finally:
        await client.aclose()
        server.cleanup()
