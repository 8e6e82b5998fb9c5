"""`credentials_id` -> a folder of files. One lookup, two homes.

In the cluster the chart mounts a Secret per id at `<credentials_dir>/<id>/` in the pods of the
pools that need it (each Secret key becomes a file); on a laptop the same folder layout lives
under a local directory (`GOREPORTS_CREDENTIALS_DIR`, default for `goreports run`:
`./credentials`). Values are read when needed and never logged, put on the bus or in status.
"""
from __future__ import annotations

from pathlib import Path

from goreports.core.errors import PermanentError


class Credentials:
    """The files of one credentials folder. `str(creds)` never shows a value."""

    def __init__(self, cred_id: str, path: Path) -> None:
        self.id = cred_id
        self.path = path

    def get(self, key: str, default: str | None = None) -> str | None:
        f = self.path / key
        if not f.is_file():
            return default
        return f.read_text().strip("\n")

    def require(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            have = ", ".join(sorted(p.name for p in self.path.iterdir() if not p.name.startswith(".")))
            raise PermanentError(f"credentials {self.id!r} have no key {key!r} "
                                 f"(keys present: {have or 'none'})", reason="CredentialsIncomplete")
        return value

    def __repr__(self) -> str:
        return f"Credentials(id={self.id!r}, path={str(self.path)!r})"


class CredentialStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def load(self, cred_id: str) -> Credentials:
        if not cred_id or "/" in cred_id or cred_id.startswith(".") or "\\" in cred_id:
            raise PermanentError(f"credentials id {cred_id!r} is not a plain name",
                                 reason="InvalidCredentialsId")
        path = self.root / cred_id
        if not path.is_dir():
            raise PermanentError(
                f"credentials {cred_id!r} not found: expected a folder {path} (in the cluster, a "
                f"Secret mounted there by the chart's credentials values)", reason="CredentialsNotFound")
        return Credentials(cred_id, path)
