"""Backlog -> replica decisions for the worker pools, and the scaler's configuration file.

Why a module of its own: the decision is policy (when to grow, when to shrink, how never to
flap) and is tested as plain functions over plain numbers, without Redis or an API server. The
loop that reads the backlog and changes Deployments is `goreports.operator.scaling`.

The policy, the way KEDA's Redis Streams scaler and the HPA behave:
- a pool needs ceil(backlog / targetBacklog) replicas, kept within [minReplicas, maxReplicas];
- it grows at once (a report waits for nobody's cool-down);
- it shrinks only once the backlog has been empty for cooldownSeconds, then straight to
  minReplicas (0 included): while jobs wait or run it keeps its size, so a burst that drains
  in waves never makes it bounce.

The configuration is the YAML the Helm chart writes into a ConfigMap
(helm/go-reports/templates/scaling-configmap.yaml).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

__all__ = [
    "PatternRef",
    "PoolConfig",
    "ScalingConfig",
    "ScalingConfigError",
    "desired_replicas",
    "load_scaling_config",
    "parse_scaling_config",
]


@dataclass(frozen=True)
class PatternRef:
    """One job stream a pool consumes: `jobs:{channel}:{pattern}`."""

    channel: str
    pattern: str


@dataclass(frozen=True, kw_only=True)
class PoolConfig:
    deployment: str
    patterns: tuple[PatternRef, ...]
    min_replicas: int = 0
    max_replicas: int = 1
    target_backlog: int = 10   # waiting jobs one replica is expected to absorb
    cooldown_seconds: float = 300.0


@dataclass(frozen=True, kw_only=True)
class ScalingConfig:
    pools: tuple[PoolConfig, ...]
    namespace: str | None = None          # where the pools' Deployments live (the chart's)
    interval_seconds: float | None = None  # how often the loop looks (None: the caller's default)


class ScalingConfigError(ValueError):
    """The scaling configuration is invalid; the message names the file and the field."""


def desired_replicas(current: int, backlog_total: int, cfg: PoolConfig,
                     last_nonzero_at: float | None, now: float) -> tuple[int, str]:
    """The replicas a pool should have now, and why (for the log).

    `current` is the Deployment's replicas, `backlog_total` the sum of pending + lag over the
    pool's streams, `last_nonzero_at` when (same clock as `now`, seconds) the backlog was last
    seen above zero, None if never.
    """
    current = max(int(current), 0)
    backlog = max(int(backlog_total), 0)
    lo, hi = cfg.min_replicas, cfg.max_replicas
    needed = math.ceil(backlog / cfg.target_backlog) if backlog else 0
    target = min(max(needed, lo), hi)
    bounded = min(max(current, lo), hi)

    if target > bounded:
        why = f"backlog {backlog} needs {needed} replica(s) at {cfg.target_backlog} job(s) each"
        if needed > hi:
            why += f", capped at maxReplicas {hi}"
        return target, f"{why}: scaling up {current} -> {target}"

    if target < bounded:
        # Shrink only after the backlog has been empty for a whole cool-down.
        if backlog == 0 and (last_nonzero_at is None or now - last_nonzero_at >= cfg.cooldown_seconds):
            idle = "never busy" if last_nonzero_at is None else f"empty for {now - last_nonzero_at:.0f}s"
            return target, (f"backlog {idle} (cooldown {cfg.cooldown_seconds:g}s): "
                            f"scaling down {current} -> {target}")
        if bounded != current:
            return bounded, _out_of_bounds(current, bounded, cfg)
        if backlog:
            return current, (f"backlog {backlog}: holding {current} until it has been empty "
                             f"for {cfg.cooldown_seconds:g}s")
        waited = 0.0 if last_nonzero_at is None else now - last_nonzero_at
        return current, (f"backlog empty for {waited:.0f}s of {cfg.cooldown_seconds:g}s "
                         f"cooldown: holding {current}")

    if bounded != current:
        return bounded, _out_of_bounds(current, bounded, cfg)
    return current, f"backlog {backlog}: steady at {current}"


def _out_of_bounds(current: int, bounded: int, cfg: PoolConfig) -> str:
    if current < cfg.min_replicas:
        return f"{current} replica(s) is below minReplicas {cfg.min_replicas}: scaling up to {bounded}"
    return f"{current} replica(s) is above maxReplicas {cfg.max_replicas}: scaling down to {bounded}"


# -- configuration ---------------------------------------------------------------------------

_Fail = Callable[[str, str], ScalingConfigError]

_POOL_KEYS = {"deployment", "patterns", "minReplicas", "maxReplicas", "targetBacklog", "cooldownSeconds"}
_TOP_KEYS = {"pools", "namespace", "intervalSeconds"}


def load_scaling_config(path: str | Path) -> ScalingConfig:
    """Read and check the scaler's YAML (a mapping with `pools`, or a bare list of pools)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ScalingConfigError(f"scaling config {p}: cannot read it ({e.strerror or e})") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ScalingConfigError(f"scaling config {p}: not valid YAML ({e})") from e
    return parse_scaling_config(data, source=str(p))


def parse_scaling_config(data: Any, *, source: str = "scaling config") -> ScalingConfig:
    """Check an already parsed configuration; errors name `source` and the field."""
    def fail(field: str, problem: str) -> ScalingConfigError:
        return ScalingConfigError(f"{source}: {field}: {problem}")

    if data is None:
        data = {"pools": []}
    if isinstance(data, list):
        data = {"pools": data}
    if not isinstance(data, Mapping):
        raise fail("(top level)", f"expected a mapping with 'pools' or a list of pools, got {_kind(data)}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key (known: {', '.join(sorted(_TOP_KEYS))})")

    namespace = data.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise fail("namespace", f"must be a non-empty string, got {namespace!r}")
    interval = data.get("intervalSeconds")
    if interval is not None:
        interval = _number(interval, "intervalSeconds", fail, minimum=0.0, exclusive=True)

    raw_pools = data.get("pools")
    if raw_pools is None:
        raw_pools = []
    if not isinstance(raw_pools, list):
        raise fail("pools", f"must be a list, got {_kind(raw_pools)}")
    pools: list[PoolConfig] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_pools):
        pool = _parse_pool(raw, f"pools[{i}]", fail)
        if pool.deployment in seen:
            raise fail(f"pools[{i}].deployment",
                       f"{pool.deployment!r} is already configured by pools[{seen[pool.deployment]}]")
        seen[pool.deployment] = i
        pools.append(pool)
    return ScalingConfig(pools=tuple(pools), namespace=namespace, interval_seconds=interval)


def _parse_pool(raw: Any, where: str, fail: _Fail) -> PoolConfig:
    if not isinstance(raw, Mapping):
        raise fail(where, f"must be a mapping, got {_kind(raw)}")
    unknown = sorted(set(raw) - _POOL_KEYS)
    if unknown:
        raise fail(f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_POOL_KEYS))})")
    deployment = raw.get("deployment")
    if not isinstance(deployment, str) or not deployment:
        raise fail(f"{where}.deployment", f"must be the name of a Deployment, got {deployment!r}")
    where = f"{where} ({deployment})"

    patterns_raw = raw.get("patterns")
    if not isinstance(patterns_raw, list) or not patterns_raw:
        raise fail(f"{where}.patterns", f"must be a non-empty list of {{channel, pattern}}, got {patterns_raw!r}")
    patterns: list[PatternRef] = []
    for j, item in enumerate(patterns_raw):
        field = f"{where}.patterns[{j}]"
        if not isinstance(item, Mapping):
            raise fail(field, f"must be a mapping {{channel, pattern}}, got {_kind(item)}")
        extra = sorted(set(item) - {"channel", "pattern"})
        if extra:
            raise fail(f"{field}.{extra[0]}", "unknown key (known: channel, pattern)")
        for key in ("channel", "pattern"):
            if not isinstance(item.get(key), str) or not item.get(key):
                raise fail(f"{field}.{key}", f"must be a non-empty string, got {item.get(key)!r}")
        ref = PatternRef(item["channel"], item["pattern"])
        if ref in patterns:
            raise fail(field, f"{ref.channel}/{ref.pattern} is listed twice")
        patterns.append(ref)

    lo = _integer(raw.get("minReplicas", 0), f"{where}.minReplicas", fail, minimum=0)
    hi = _integer(raw.get("maxReplicas"), f"{where}.maxReplicas", fail, minimum=1)
    if hi < lo:
        raise fail(f"{where}.maxReplicas", f"{hi} is below minReplicas {lo}")
    target = _integer(raw.get("targetBacklog", 10), f"{where}.targetBacklog", fail, minimum=1)
    cooldown = _number(raw.get("cooldownSeconds", 300), f"{where}.cooldownSeconds", fail, minimum=0.0)
    return PoolConfig(deployment=deployment, patterns=tuple(patterns), min_replicas=lo, max_replicas=hi,
                      target_backlog=target, cooldown_seconds=cooldown)


def _integer(value: Any, field: str, fail: _Fail, *, minimum: int) -> int:
    # bool is an int in Python; `maxReplicas: yes` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(field, f"must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise fail(field, f"must be >= {minimum}, got {value}")
    return value


def _number(value: Any, field: str, fail: _Fail, *, minimum: float, exclusive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(field, f"must be a number of seconds, got {value!r}")
    if value < minimum or (exclusive and value == minimum):
        raise fail(field, f"must be {'>' if exclusive else '>='} {minimum:g}, got {value}")
    return float(value)


def _kind(value: Any) -> str:
    return type(value).__name__

