"""One typed settings object per process, read from the environment once and passed explicitly.

The names of the seed (REDIS_ADDR, REDIS_DB, REDIS_PASS, JWT_*) are kept; everything else is
prefixed GOREPORTS_.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping


def _bool(v: str | None, default: bool = False) -> bool:
    if v is None or v == "":
        return default
    return v.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True, kw_only=True)
class Settings:
    redis_addr: str = "localhost:6379"
    redis_db: int = 0
    redis_pass: str | None = None
    redis_username: str | None = None
    redis_tls: bool = False
    redis_tls_ca: str | None = None
    # Connections one process may hold to Redis; past it a command waits for a free one (up to
    # redis_pool_wait seconds) instead of failing, which a burst of reports would otherwise do.
    redis_max_connections: int = 100
    redis_pool_wait: float = 30.0
    prefix: str = "goreports"
    # A job whose worker has not touched it for this long is taken over by another worker.
    visibility_timeout: float = 30.0
    # How often a busy worker renews its claim on a long job (well under the timeout).
    heartbeat_interval: float = 5.0
    retry_base_delay: float = 1.0
    retry_max_delay: float = 60.0
    # Dataset streams: rows per entry and how many entries a producer may run ahead of readers.
    batch_rows: int = 500
    window_batches: int = 64
    # Keys of a report expire after this long even if nobody cleans them (operator down).
    report_ttl: int = 7 * 24 * 3600
    credentials_dir: Path = field(default_factory=lambda: Path("/var/run/goreports/credentials"))
    artifact_store: str = "local"  # local | s3
    artifact_dir: Path = field(default_factory=lambda: Path("/var/lib/goreports/artifacts"))
    artifact_s3_bucket: str = ""
    artifact_s3_prefix: str = "staging/"
    artifact_s3_endpoint: str = ""
    artifact_s3_credentials_id: str = ""
    work_dir: Path = field(default_factory=lambda: Path(os.environ.get("TMPDIR", "/tmp")))
    log_level: str = "INFO"
    log_format: str = "text"  # text | json

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        e = os.environ if env is None else env
        s = cls(
            redis_addr=e.get("REDIS_ADDR", "localhost:6379"),
            redis_db=int(e.get("REDIS_DB", "0") or 0),
            redis_pass=e.get("REDIS_PASS") or None,
            redis_username=e.get("REDIS_USERNAME") or None,
            redis_tls=_bool(e.get("REDIS_TLS")),
            redis_tls_ca=e.get("REDIS_TLS_CA") or None,
            redis_max_connections=max(1, int(e.get("REDIS_MAX_CONNECTIONS", "100") or 100)),
            redis_pool_wait=float(e.get("REDIS_POOL_WAIT_SECONDS", "30") or 30),
            prefix=e.get("GOREPORTS_PREFIX", "goreports"),
            visibility_timeout=float(e.get("GOREPORTS_VISIBILITY_TIMEOUT", "30")),
            heartbeat_interval=float(e.get("GOREPORTS_HEARTBEAT_INTERVAL", "5")),
            retry_base_delay=float(e.get("GOREPORTS_RETRY_BASE_DELAY", "1")),
            retry_max_delay=float(e.get("GOREPORTS_RETRY_MAX_DELAY", "60")),
            batch_rows=int(e.get("GOREPORTS_BATCH_ROWS", "500")),
            window_batches=int(e.get("GOREPORTS_WINDOW_BATCHES", "64")),
            report_ttl=int(e.get("GOREPORTS_REPORT_TTL", str(7 * 24 * 3600))),
            credentials_dir=Path(e.get("GOREPORTS_CREDENTIALS_DIR", "/var/run/goreports/credentials")),
            artifact_store=e.get("GOREPORTS_ARTIFACT_STORE", "local"),
            artifact_dir=Path(e.get("GOREPORTS_ARTIFACT_DIR", "/var/lib/goreports/artifacts")),
            artifact_s3_bucket=e.get("GOREPORTS_ARTIFACT_S3_BUCKET", ""),
            artifact_s3_prefix=e.get("GOREPORTS_ARTIFACT_S3_PREFIX", "staging/"),
            artifact_s3_endpoint=e.get("GOREPORTS_ARTIFACT_S3_ENDPOINT", ""),
            artifact_s3_credentials_id=e.get("GOREPORTS_ARTIFACT_S3_CREDENTIALS_ID", ""),
            work_dir=Path(e.get("GOREPORTS_WORK_DIR", e.get("TMPDIR", "/tmp"))),
            log_level=e.get("GOREPORTS_LOG_LEVEL", e.get("LOG_LEVEL", "INFO")).upper(),
            log_format=e.get("GOREPORTS_LOG_FORMAT", "text"),
        )
        return replace(s, **overrides) if overrides else s  # type: ignore[arg-type]

    def redis_host_port(self) -> tuple[str, int]:
        addr = self.redis_addr
        if addr.startswith(("redis://", "rediss://")):
            addr = addr.split("://", 1)[1].rsplit("@", 1)[-1].split("/", 1)[0]
        host, _, port = addr.rpartition(":")
        return (host or "localhost", int(port or 6379))
