"""The Reports API (`goreports api`) in a subprocess against the test control plane, and tokens.

The API runs exactly as in a pod: its own process, REST and gRPC on free loopback ports,
KUBECONFIG pointing at the real kube-apiserver of tests/support/k8s.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

from goreports.api.auth import ACCESS, AuthConfig, issue_token
from support.servers import spawn_on_free_ports

TESTS = Path(__file__).resolve().parents[1]
SECRET = "e2e-test-secret-of-the-reports-api-0123456789"
CONFIG = AuthConfig(secret_key=SECRET)

# `goreports api` through its own add_parser, so the tests do not depend on cli/main.py wiring.
_RUN = ("import argparse, sys; from goreports.cli import api; p = argparse.ArgumentParser(); "
        "s = p.add_subparsers(); api.add_parser(s); a = p.parse_args(sys.argv[1:]); "
        "sys.exit(a.func(a))")


def token(sub: str = "tester", namespaces: Any = ("*",), *, tenant: str | None = None,
          kind: str = ACCESS, **kw: Any) -> str:
    return issue_token(CONFIG, sub, list(namespaces), tenant=tenant, kind=kind, **kw)


class ApiProcess:
    """`goreports api` on free ports; `url` is the REST base, `grpc_target` host:port."""

    def __init__(self, kubeconfig: Path, tmp: Path, *, name: str = "api", **env: str) -> None:
        self.log = tmp / f"{name}.log"
        full_env = dict(os.environ)
        full_env.update(KUBECONFIG=str(kubeconfig), JWT_SECRET_KEY=SECRET, GOREPORTS_LOG_LEVEL="INFO",
                        PYTHONPATH=str(TESTS))
        full_env.update(env)

        def spawn(ports: list[int]) -> subprocess.Popen:  # type: ignore[type-arg]
            args = [sys.executable, "-c", _RUN, "api", "--host", "127.0.0.1", "--http-port",
                    str(ports[0]), "--grpc-port", str(ports[1]), "--grace-period", "2"]
            return subprocess.Popen(args, env=full_env, cwd=tmp, stdout=open(self.log, "ab"),
                                    stderr=subprocess.STDOUT)

        self.proc, (self.http_port, self.grpc_port) = spawn_on_free_ports(
            2, spawn, self.log, "the API", timeout=90)
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def call(method: str, url: str, body: Any = None, *, token: str | None = None,
         headers: dict[str, str] | None = None, raw: bytes | None = None,
         timeout: float = 30) -> tuple[int, dict[str, str], Any]:
    """One HTTP call: (status, headers, JSON body or text)."""
    h = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, rh, text = resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as e:
        status, rh, text = e.code, dict(e.headers), e.read().decode()
    try:
        return status, rh, json.loads(text)
    except ValueError:
        return status, rh, text


def sse_events(url: str, token: str, timeout: float = 120,
               on_event: Callable[[str, dict[str, Any]], None] | None = None
               ) -> list[tuple[str, dict[str, Any]]]:
    """Read a server-sent event stream to its end: [(event, data), ...]; `on_event` is called
    with each as it arrives (a test can wait for the first before changing anything)."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}",
                                               "Accept": "text/event-stream"})
    events: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        kind, data = "message", ""
        for raw in resp:
            line = raw.decode().rstrip("\n")
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and data:
                events.append((kind, json.loads(data)))
                if on_event is not None:
                    on_event(*events[-1])
                kind, data = "message", ""
            if time.monotonic() > deadline:
                raise TimeoutError(f"the event stream did not end in {timeout}s: {events}")
    return events
