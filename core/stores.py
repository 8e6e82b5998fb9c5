"""Choose the artifact store from settings (local folder, or S3-compatible staging)."""
from __future__ import annotations

from goreports.core.settings import Settings
from goreports.core.artifacts import ArtifactStore, LocalArtifactStore


def artifact_store_from_settings(settings: Settings) -> ArtifactStore:
    if settings.artifact_store == "local":
        return LocalArtifactStore(settings.artifact_dir)
    if settings.artifact_store == "s3":
        from goreports.core.artifacts_s3 import S3ArtifactStore  # boto3 only when used

        return S3ArtifactStore.from_settings(settings)
    raise ValueError(f"GOREPORTS_ARTIFACT_STORE={settings.artifact_store!r} is not supported "
                     f"(supported: local, s3)")
