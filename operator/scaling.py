"""The scaler loop: every few seconds, each worker pool's backlog -> its Deployment's replicas.

Why built in rather than KEDA: one less component to install, and it reacts in seconds (the
operator already holds a Redis connection). The decision itself is pure and lives in
`scaling_logic`; this module only reads the backlog from the bus, reads and changes the scale
subresource of the pools' Deployments (RBAC: get/patch on deployments/scale, nothing else), and
logs every change with its reason.

Failures never stop the loop: a pool whose backlog or Deployment cannot be read is left as it
is for that round (never scaled down on missing data) and the problem is logged once per streak.
With several operator replicas each runs this loop; they read the same backlog and the same
replicas, so they agree on growing, and the cool-down keeps a late starter from shrinking early.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from goreports.core.bus.base import Bus
from goreports.operator.scaling_logic import PoolConfig, ScalingConfig, desired_replicas

log = logging.getLogger("goreports.operator.scaling")

__all__ = ["PoolState", "run_scaler", "scale_once"]


@dataclass
class PoolState:
    """What the scaler knows about one pool between rounds (also useful to tests and status)."""

    deployment: str
    # When (clock seconds) the backlog was last above zero. Starts at the loop's start, so a
    # restarted operator waits a full cool-down before it shrinks anything.
    last_nonzero_at: float | None
    backlog: int | None = None
    replicas: int | None = None
    reason: str = ""
    changes: int = 0
    error: str | None = None   # the current streak's problem, logged once


async def run_scaler(bus: Bus, apps_api: Any, namespace: str,
                     config: ScalingConfig | Sequence[PoolConfig], interval: float = 2.0,
                     stop: asyncio.Event | None = None, *,
                     clock: Callable[[], float] = time.monotonic) -> dict[str, PoolState]:
    """Scale the pools until `stop` is set (or the task is cancelled); return their state.

    `apps_api` is a `kubernetes.client.AppsV1Api` (synchronous: called in threads).
    """
    pools = tuple(config.pools if isinstance(config, ScalingConfig) else config)
    stop = stop or asyncio.Event()
    started = clock()
    states = {p.deployment: PoolState(deployment=p.deployment, last_nonzero_at=started) for p in pools}
    log.info("scaler started: %d pool(s) in namespace %s, every %gs: %s", len(pools), namespace,
             interval, ", ".join(f"{p.deployment} [{p.min_replicas}..{p.max_replicas}]" for p in pools) or "none")
    while not stop.is_set():
        await scale_once(bus, apps_api, namespace, pools, states, clock=clock)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except asyncio.TimeoutError:
            pass
    log.info("scaler stopped")
    return states


async def scale_once(bus: Bus, apps_api: Any, namespace: str, pools: Sequence[PoolConfig],
                     states: dict[str, PoolState], *,
                     clock: Callable[[], float] = time.monotonic) -> None:
    """One round over every pool (concurrently: a slow API call does not delay the others)."""
    await asyncio.gather(*(_scale_pool(bus, apps_api, namespace, p, states, clock) for p in pools))


async def _scale_pool(bus: Bus, apps_api: Any, namespace: str, pool: PoolConfig,
                      states: dict[str, PoolState], clock: Callable[[], float]) -> None:
    state = states.setdefault(pool.deployment, PoolState(deployment=pool.deployment,
                                                         last_nonzero_at=clock()))
    where = f"pool {pool.deployment} (namespace {namespace})"
    try:
        backlog = 0
        for ref in pool.patterns:
            backlog += (await bus.backlog(ref.channel, ref.pattern)).total
    except Exception as e:  # Redis down, timeouts: keep the pool as it is
        _problem(state, f"{where}: cannot read the backlog from Redis ({type(e).__name__}: {e}); "
                        f"replicas left unchanged")
        return
    now = clock()
    if backlog > 0:
        state.last_nonzero_at = now
    state.backlog = backlog

    try:
        scale = await asyncio.to_thread(apps_api.read_namespaced_deployment_scale, pool.deployment, namespace)
    except Exception as e:
        _problem(state, f"{where}: cannot read the Deployment's scale ({_api_error(e)})")
        return
    current = int(getattr(scale.spec, "replicas", None) or 0)
    state.replicas = current

    replicas, reason = desired_replicas(current, backlog, pool, state.last_nonzero_at, now)
    state.reason = reason
    if replicas == current:
        _recovered(state, where)
        return
    try:
        await asyncio.to_thread(apps_api.patch_namespaced_deployment_scale, pool.deployment, namespace,
                                {"spec": {"replicas": replicas}})
    except Exception as e:
        _problem(state, f"{where}: cannot scale {current} -> {replicas} ({_api_error(e)})")
        return
    _recovered(state, where)
    state.replicas = replicas
    state.changes += 1
    log.info("scaled %s (namespace %s): %s", pool.deployment, namespace, reason)


def _problem(state: PoolState, message: str) -> None:
    if state.error != message:  # once per streak, not every two seconds
        log.warning(message)
    state.error = message


def _recovered(state: PoolState, where: str) -> None:
    if state.error is not None:
        log.info("%s: scaler working again", where)
        state.error = None


def _api_error(e: Exception) -> str:
    """A short description of a Kubernetes API error, with what to do for the usual ones."""
    status = getattr(e, "status", None)
    if status == 404:
        return "HTTP 404: the Deployment does not exist; check the scaling config's deployment names"
    if status == 403:
        return ("HTTP 403: the operator's ServiceAccount may not get/patch deployments/scale here; "
                "check the chart's scaler Role")
    if status is not None:
        return f"HTTP {status}: {getattr(e, 'reason', '') or type(e).__name__}"
    return f"{type(e).__name__}: {e}"
