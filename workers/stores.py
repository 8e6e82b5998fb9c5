"""Choose the artifact store from settings (local folder, or S3-compatible staging)."""
from __future__ import annotations

from goreports.core.settings import Settings
from goreports.workers.artifacts import ArtifactStore, LocalArtifactStore


def artifact_store_from_settings(settings: Settings) -> ArtifactStore:
    if settings.artifact_store == "local":
        return LocalArtifactStore(settings.artifact_dir)
    raise ValueError(f"GOREPORTS_ARTIFACT_STORE={settings.artifact_store!r} is not supported "
                     f"(supported: local)")
