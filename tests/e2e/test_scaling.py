"""The operator scales a worker pool Deployment from its stream's backlog, on a real API server."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest
import redis
import yaml

from support.k8s import OperatorProcess, cluster, namespace  # noqa: F401
from support.servers import RedisServer
from support.workers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def redis_srv() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


def deployment(name: str, replicas: int) -> dict:
    labels = {"app.kubernetes.io/name": "go-reports", "goreports.io/pool": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "worker", "image": "go-reports:test",
                          "args": ["worker", "--pattern", "excel"]}]}}}}


def test_backlog_raises_replicas_and_drain_lowers_them(cluster, namespace, redis_srv, tmp_path: Path) -> None:  # noqa: F811
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(deployment("pool-excel", 1)))
    cfg = tmp_path / "scaling.yaml"
    cfg.write_text(yaml.safe_dump({"namespace": namespace, "intervalSeconds": 0.5, "pools": [
        {"deployment": "pool-excel", "patterns": [{"channel": "generators", "pattern": "excel"}],
         "minReplicas": 1, "maxReplicas": 5, "targetBacklog": 50, "cooldownSeconds": 3}]}))
    op = OperatorProcess(cluster, redis_srv.addr, tmp_path, namespace, GOREPORTS_SCALING_FILE=str(cfg))
    r = redis.Redis(*redis_srv.addr.split(":"))
    stream = "goreports:jobs:generators:excel"

    def replicas() -> int:
        out = cluster.kubectl("get", "deployment", "pool-excel", "-n", namespace, "-o",
                              "jsonpath={.spec.replicas}").stdout
        return int(out or 0)

    try:
        time.sleep(1.5)
        assert replicas() == 1
        # Any round of the scaler that sees the backlog (the one that scales up among them)
        # reads it after t0, so the cool-down cannot end before t0 + 3 s.
        t0 = time.monotonic()
        with r.pipeline() as p:
            for i in range(200):
                p.xadd(stream, {"job": b"x%d" % i})
            p.execute()
        wait_for(lambda: replicas() == 4, 60, 0.1, what="replicas raised to ceil(200/50)")
        up = time.monotonic() - t0
        # drain: a worker takes and acknowledges every job
        try:
            r.xgroup_create(stream, "excel", id="0", mkstream=True)
        except redis.ResponseError:
            pass
        entries = r.xreadgroup("excel", "w", {stream: ">"}, count=1000)
        r.xack(stream, "excel", *[eid for eid, _ in entries[0][1]])
        t1 = time.monotonic()
        wait_for(lambda: replicas() == 1, 60, 0.1, what="replicas back to the minimum after the cool-down")
        down = time.monotonic() - t1
        # Measured from t0, not from the drain: the scaler's last look at a non-empty backlog
        # may be a round or two before the drain on a loaded machine, never before t0. (A
        # scaler ignoring the cool-down shrinks right after the drain, ~1 s after t0 here.)
        assert time.monotonic() - t0 >= 3.0, f"scaled down {up + down:.1f}s after the backlog " \
            f"appeared, {down:.1f}s after the drain: before the 3 s cool-down ended"
        print(f"\nscale-up after backlog appeared: {up:.2f}s; back to min after drain: {down:.2f}s "
              f"(cool-down 3s)")
    finally:
        op.stop()
