"""The scaler's decision (backlog -> replicas) and its configuration file, without any server."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from goreports.operator.scaling_logic import (
    PatternRef,
    PoolConfig,
    ScalingConfigError,
    desired_replicas,
    load_scaling_config,
    parse_scaling_config,
)


def pool(lo: int = 1, hi: int = 5, target: int = 10, cooldown: float = 300.0) -> PoolConfig:
    return PoolConfig(deployment="go-reports-worker-generators",
                      patterns=(PatternRef("generators", "excel"),),
                      min_replicas=lo, max_replicas=hi, target_backlog=target, cooldown_seconds=cooldown)


# -- scaling up -------------------------------------------------------------------------------

def test_scales_up_at_once_to_the_needed_replicas() -> None:
    replicas, reason = desired_replicas(1, 35, pool(), last_nonzero_at=999.0, now=1000.0)
    assert replicas == 4  # ceil(35 / 10)
    assert "backlog 35" in reason and "1 -> 4" in reason


def test_scales_up_even_right_after_a_scale_down() -> None:
    # No cool-down on the way up: a report never waits for one.
    assert desired_replicas(1, 11, pool(), last_nonzero_at=1000.0, now=1000.0)[0] == 2


def test_scale_up_is_capped_at_max_replicas() -> None:
    replicas, reason = desired_replicas(2, 10_000, pool(hi=5), last_nonzero_at=0.0, now=1.0)
    assert replicas == 5
    assert "capped at maxReplicas 5" in reason


def test_a_partial_batch_still_gets_a_replica() -> None:
    assert desired_replicas(0, 1, pool(lo=0), last_nonzero_at=None, now=0.0)[0] == 1


# -- bounds -----------------------------------------------------------------------------------

def test_below_min_replicas_is_raised_to_min_without_backlog() -> None:
    replicas, reason = desired_replicas(0, 0, pool(lo=2), last_nonzero_at=None, now=0.0)
    assert replicas == 2
    assert "below minReplicas 2" in reason


def test_above_max_replicas_is_lowered_at_once_even_with_backlog() -> None:
    # maxReplicas was lowered in the chart: obey it now, not after a cool-down.
    replicas, reason = desired_replicas(9, 500, pool(hi=4), last_nonzero_at=100.0, now=100.0)
    assert replicas == 4
    assert "above maxReplicas 4" in reason


def test_above_max_then_cooldown_applies_below_it() -> None:
    # Backlog gone but cool-down running: come down to max only, not to min.
    assert desired_replicas(9, 0, pool(lo=1, hi=4), last_nonzero_at=100.0, now=110.0)[0] == 4


# -- scaling down -----------------------------------------------------------------------------

def test_no_scale_down_while_jobs_wait_or_run() -> None:
    # 3 replicas, backlog 4 (needs 1): keep 3 while the backlog is not empty.
    replicas, reason = desired_replicas(3, 4, pool(), last_nonzero_at=0.0, now=10_000.0)
    assert replicas == 3
    assert "holding 3" in reason


def test_no_scale_down_before_the_cooldown() -> None:
    replicas, reason = desired_replicas(3, 0, pool(cooldown=300), last_nonzero_at=1000.0, now=1299.0)
    assert replicas == 3
    assert "299s of 300s" in reason


def test_scale_down_to_min_after_the_cooldown() -> None:
    replicas, reason = desired_replicas(3, 0, pool(lo=1, cooldown=300), last_nonzero_at=1000.0, now=1300.0)
    assert replicas == 1
    assert "3 -> 1" in reason


def test_scale_to_zero_when_min_is_zero() -> None:
    assert desired_replicas(2, 0, pool(lo=0, cooldown=60), last_nonzero_at=0.0, now=60.0)[0] == 0


def test_never_below_min_even_when_idle_for_ever() -> None:
    assert desired_replicas(1, 0, pool(lo=1), last_nonzero_at=None, now=1e9)[0] == 1


def test_never_busy_pool_may_shrink_at_once() -> None:
    # last_nonzero_at None = no backlog seen at all; the loop passes its start time instead.
    assert desired_replicas(3, 0, pool(lo=0), last_nonzero_at=None, now=0.0)[0] == 0


def test_zero_cooldown_shrinks_as_soon_as_the_backlog_is_empty() -> None:
    assert desired_replicas(4, 0, pool(lo=0, cooldown=0), last_nonzero_at=50.0, now=50.0)[0] == 0


def test_steady_state_keeps_the_replicas() -> None:
    replicas, reason = desired_replicas(2, 20, pool(), last_nonzero_at=0.0, now=1.0)
    assert replicas == 2
    assert "steady" in reason


# -- flapping ---------------------------------------------------------------------------------

def simulate(cfg: PoolConfig, backlog_at: list[int], start: int = 1, step: float = 2.0) -> list[int]:
    """The replicas over time, as the loop would set them (one reading every `step` seconds)."""
    current, last_nonzero = start, 0.0
    history = []
    for i, backlog in enumerate(backlog_at):
        now = i * step
        if backlog > 0:
            last_nonzero = now
        current, _ = desired_replicas(current, backlog, cfg, last_nonzero, now)
        history.append(current)
    return history


def test_a_backlog_that_drains_in_waves_does_not_flap() -> None:
    cfg = pool(lo=0, hi=10, target=10, cooldown=30)
    # Bursts of 50 jobs every 20 s that drain within 10 s: the gaps are shorter than the
    # cool-down, so the pool grows once and stays.
    waves = ([50, 30, 10, 0, 0, 0, 0, 0, 0, 0] * 6)
    history = simulate(cfg, waves, start=0)
    assert history[0] == 5
    assert set(history) == {5}


def test_replicas_only_fall_after_a_full_quiet_cooldown() -> None:
    cfg = pool(lo=0, hi=10, target=10, cooldown=30)
    backlog = [80] + [0] * 14 + [0] * 5   # 2 s steps: quiet from t=2 s on
    history = simulate(cfg, backlog, start=0)
    assert history[0] == 8
    first_drop = next(i for i, r in enumerate(history) if r < 8)
    assert first_drop * 2.0 >= 30
    assert history[first_drop:] == [0] * (len(history) - first_drop)


@settings(max_examples=300, deadline=None)
@given(backlog=st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=80),
       lo=st.integers(min_value=0, max_value=3), extra=st.integers(min_value=0, max_value=6),
       target=st.integers(min_value=1, max_value=20), cooldown=st.sampled_from([0, 4, 10, 30]))
def test_properties(backlog: list[int], lo: int, extra: int, target: int, cooldown: int) -> None:
    cfg = pool(lo=lo, hi=lo + max(extra, 1), target=target, cooldown=cooldown)
    step = 2.0
    history = simulate(cfg, backlog, start=lo, step=step)
    last_nonzero = None
    for i, (b, r) in enumerate(zip(backlog, history)):
        now = i * step
        if b > 0:
            last_nonzero = now
        # Always within bounds.
        assert cfg.min_replicas <= r <= cfg.max_replicas
        # Enough replicas for the backlog (up to the cap), at once.
        assert r >= min(-(-b // target), cfg.max_replicas)
        if i:
            prev = history[i - 1]
            if r < prev:
                # A decrease only with an empty backlog, a whole cool-down after the last job...
                assert b == 0
                assert last_nonzero is None or now - last_nonzero >= cooldown
                # ... and straight to min, never in steps (each step would be a flap risk).
                assert r == cfg.min_replicas


# -- configuration ----------------------------------------------------------------------------

GOOD = {
    "namespace": "reports",
    "intervalSeconds": 2,
    "pools": [{
        "deployment": "go-reports-worker-collectors",
        "patterns": [{"channel": "collectors", "pattern": "mysql"},
                     {"channel": "collectors", "pattern": "http"}],
        "minReplicas": 0, "maxReplicas": 4, "targetBacklog": 5, "cooldownSeconds": 120,
    }],
}


def test_load_scaling_config(tmp_path: Path) -> None:
    f = tmp_path / "scaling.yaml"
    f.write_text(yaml.safe_dump(GOOD))
    cfg = load_scaling_config(f)
    assert cfg.namespace == "reports" and cfg.interval_seconds == 2.0
    (p,) = cfg.pools
    assert p.deployment == "go-reports-worker-collectors"
    assert p.patterns == (PatternRef("collectors", "mysql"), PatternRef("collectors", "http"))
    assert (p.min_replicas, p.max_replicas, p.target_backlog, p.cooldown_seconds) == (0, 4, 5, 120.0)


def test_a_bare_list_of_pools_is_accepted() -> None:
    cfg = parse_scaling_config(GOOD["pools"])
    assert len(cfg.pools) == 1 and cfg.namespace is None


def test_an_empty_file_means_no_pools(tmp_path: Path) -> None:
    f = tmp_path / "scaling.yaml"
    f.write_text("")
    assert load_scaling_config(f).pools == ()


def with_pool(**changes: object) -> dict[str, object]:
    p = dict(GOOD["pools"][0])  # type: ignore[index]
    for k, v in changes.items():
        if v is None:
            p.pop(k, None)
        else:
            p[k] = v
    return {"pools": [p]}


@pytest.mark.parametrize("data, field, words", [
    (with_pool(maxReplicas="x"), "pools[0] (go-reports-worker-collectors).maxReplicas", "integer"),
    (with_pool(maxReplicas=None), "pools[0] (go-reports-worker-collectors).maxReplicas", "integer"),
    (with_pool(maxReplicas=True), "pools[0] (go-reports-worker-collectors).maxReplicas", "integer"),
    (with_pool(minReplicas=-1), "pools[0] (go-reports-worker-collectors).minReplicas", ">= 0"),
    (with_pool(minReplicas=5), "pools[0] (go-reports-worker-collectors).maxReplicas", "below minReplicas 5"),
    (with_pool(targetBacklog=0), "pools[0] (go-reports-worker-collectors).targetBacklog", ">= 1"),
    (with_pool(cooldownSeconds="5m"), "pools[0] (go-reports-worker-collectors).cooldownSeconds", "seconds"),
    (with_pool(patterns=[]), "pools[0] (go-reports-worker-collectors).patterns", "non-empty"),
    (with_pool(patterns=["mysql"]), "pools[0] (go-reports-worker-collectors).patterns[0]", "mapping"),
    (with_pool(patterns=[{"channel": "collectors"}]),
     "pools[0] (go-reports-worker-collectors).patterns[0].pattern", "non-empty string"),
    (with_pool(maxReplica=3), "pools[0].maxReplica", "unknown key"),
    (with_pool(deployment=""), "pools[0].deployment", "name of a Deployment"),
    ({"pools": [GOOD["pools"][0], GOOD["pools"][0]]}, "pools[1].deployment", "already configured"),  # type: ignore[index]
    ({"pools": {"a": 1}}, "pools", "must be a list"),
    ({"pool": []}, "pool", "unknown key"),
    ({"pools": [], "intervalSeconds": 0}, "intervalSeconds", "> 0"),
    ("just text", "(top level)", "mapping"),
])
def test_invalid_config_names_the_field(data: object, field: str, words: str) -> None:
    with pytest.raises(ScalingConfigError) as e:
        parse_scaling_config(data, source="/etc/goreports/scaling.yaml")
    message = str(e.value)
    assert message.startswith(f"/etc/goreports/scaling.yaml: {field}: "), message
    assert words in message


def test_unreadable_or_broken_files_say_which_file(tmp_path: Path) -> None:
    with pytest.raises(ScalingConfigError, match="missing.yaml: cannot read"):
        load_scaling_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pools: [\n")
    with pytest.raises(ScalingConfigError, match="bad.yaml: not valid YAML"):
        load_scaling_config(bad)
