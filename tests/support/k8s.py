"""The real test control plane with go-reports' CRDs applied, and operator processes.

One kube-apiserver + etcd per test session (built from the Kubernetes Go modules by
tests/controlplane/build.sh); each test gets its own namespace.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from support.servers import spawn_on_free_ports

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from controlplane.cluster import ControlPlane  # noqa: E402


@pytest.fixture(scope="session")
def cluster() -> Iterator[ControlPlane]:
    with ControlPlane() as cp:
        cp.apply(ROOT / "deploy" / "crds")
        for f in sorted((ROOT / "deploy" / "crds").glob("*.yaml")):
            name = yaml.safe_load(f.read_text())["metadata"]["name"]
            cp.wait_for_crd(name)
        yield cp


@pytest.fixture
def namespace(cluster: ControlPlane) -> Iterator[str]:
    ns = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", ns)
    yield ns
    # no namespace controller runs: objects stay, but each test has its own namespace


def kubectl_json(cluster: ControlPlane, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def in_phase(obj: dict[str, Any], phases: tuple[str, ...] = ("Succeeded", "Failed")) -> bool:
    """The ReportRequest is in one of `phases`, and when that is Succeeded no step still shows
    Running or Retrying.

    Why the second part: the operator marks a report Succeeded on its *last* step's Succeeded
    event, while a streaming producer (the collector) emits its own Succeeded event, with the
    final row count, only after its readers are done, so it can be folded a moment *after* the
    report turned Succeeded (seen: phase Succeeded, collect Running at 17,800 of 20,000 rows).
    Tests that read step states or rows wait for that event too."""
    st = obj.get("status") or {}
    if st.get("phase") not in phases:
        return False
    return st["phase"] != "Succeeded" or not any(
        s.get("state") in ("Running", "Retrying") for s in st.get("steps") or [])


def operator_env(cluster: ControlPlane, redis_addr: str, tmp: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(KUBECONFIG=str(cluster.kubeconfig), REDIS_ADDR=redis_addr,
               GOREPORTS_ARTIFACT_DIR=str(tmp / "staging"), GOREPORTS_LOG_LEVEL="INFO",
               PYTHONPATH=str(TESTS))
    env.update(extra)
    return env


class OperatorProcess:
    """`goreports operator` in a subprocess with a liveness endpoint to wait on."""

    def __init__(self, cluster: ControlPlane, redis_addr: str, tmp: Path, namespace: str,
                 *extra_args: str, name: str = "operator", **env: str) -> None:
        self.log = tmp / f"{name}.log"

        def spawn(ports: list[int]) -> subprocess.Popen:  # type: ignore[type-arg]
            args = [sys.executable, "-m", "goreports.cli.main", "operator", "--namespace", namespace,
                    "--liveness", f"http://127.0.0.1:{ports[0]}/healthz", *extra_args]
            return subprocess.Popen(args, env=operator_env(cluster, redis_addr, tmp, **env), cwd=tmp,
                                    stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)

        self.proc, (self.port,) = spawn_on_free_ports(1, spawn, self.log, "the operator", timeout=120)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
