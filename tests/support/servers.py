"""Start real servers for tests on free loopback ports, and stop them.

A missing server binary is a failure, never a skip: the test command installs them.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import redis


def free_port() -> int:
    """A port free right now. Between this call and the server's bind another process may take
    it (an outgoing connection's local port, another test's server): servers started on it
    must notice that and start again on another port (see RedisServer.start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_taken(log_text: str) -> bool:
    """Whether a server's log says its port was taken (between free_port() and its bind)."""
    return "address already in use" in log_text.lower() or "errno 98" in log_text.lower()


def wait_port(port: int, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def terminate(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:  # type: ignore[type-arg]
    """SIGTERM, then SIGKILL after `timeout` seconds; waits for the process either way."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def spawn_on_free_ports(count: int, spawn: Callable[[list[int]], subprocess.Popen], log: Path,  # type: ignore[type-arg]
                        what: str, *, timeout: float, attempts: int = 5
                        ) -> tuple[subprocess.Popen, list[int]]:  # type: ignore[type-arg]
    """Start a server process (`spawn(ports)`, writing to `log`) on `count` fresh loopback ports
    and wait until it listens on all of them. When its log says a port was taken between
    choosing it and binding it, start it again on other ports."""
    for attempt in range(attempts):
        ports = [free_port() for _ in range(count)]
        logged = log.stat().st_size if log.exists() else 0
        proc = spawn(ports)
        try:
            for port in ports:
                wait_port(port, timeout=timeout, proc=proc)
            return proc, ports
        except Exception as e:
            terminate(proc, timeout=15)
            text = log.read_bytes()[logged:].decode(errors="replace")
            if attempt < attempts - 1 and port_taken(text):
                continue
            raise RuntimeError(f"{what} did not start: {e}\n{text[-3000:]}") from e
    raise AssertionError("unreachable")


def require_binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        raise RuntimeError(f"{name} is not installed; run the README's test command (scripts/test) "
                           f"which installs it")
    return path


@dataclass
class RedisServer:
    """redis-server on a free port; `restart()` keeps the data dir (AOF when asked)."""

    appendonly: bool = False
    port: int = field(default_factory=free_port)
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="goreports-redis-")))
    proc: subprocess.Popen | None = None  # type: ignore[type-arg]
    _started: bool = field(default=False, repr=False)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def args(self, binary: str) -> list[str]:
        return [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.dir),
                "--protected-mode", "no", "--loglevel", "warning"]

    def start(self) -> "RedisServer":
        """Start and wait until *this* process answers on the port. On its first start the
        server moves to another free port when the one picked was taken meanwhile (redis-server
        then exits, or another server answers there); a restart keeps its port (clients hold
        the address)."""
        binary = require_binary("redis-server")
        for attempt in range(5):
            self.proc = subprocess.Popen(self.args(binary), stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            try:
                self._wait_own()
            except RuntimeError:
                terminate(self.proc)
                if self._started or attempt == 4:
                    raise
                self.port = free_port()
                continue
            self._started = True
            return self
        raise AssertionError("unreachable")

    def _wait_own(self, timeout: float = 60.0) -> None:
        """Until the redis-server answering on the port is our process (INFO's process_id)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode} before "
                                   f"listening on {self.port}")
            pid = _redis_pid(self.port)
            if pid == self.proc.pid:
                return
            if pid is not None:  # someone else's server holds the port
                raise RuntimeError(f"port {self.port} is held by another redis-server ({pid})")
            time.sleep(0.05)
        raise TimeoutError(f"redis-server did not answer on 127.0.0.1:{self.port} after {timeout}s")

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _redis_pid(port: int) -> int | None:
    """The process id of the redis-server answering on 127.0.0.1:`port`, None when none does."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)
    try:
        return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError, KeyError, ValueError):
        return None
    finally:
        client.close()
