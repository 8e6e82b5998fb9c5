"""Pure pieces of the Drive dispatcher: the service-account key, the OAuth2 JWT assertion
(RFC 7523, as Google's token endpoint expects it) and the URLs and headers of Drive v3's
resumable upload protocol.

Kept apart from the stage so they are tested without a network
(tests/unit/workers/test_http_drive.py).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jwt
from yarl import URL

from goreports.core.errors import PermanentError

SCOPE = "https://www.googleapis.com/auth/drive.file"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
DEFAULT_UPLOAD_URL = "https://www.googleapis.com/upload/drive/v3/files?uploadType=resumable"
KEY_FILE = "service-account.json"
APP_PROPERTY = "goreportsKey"  # set on each uploaded file: finds it again after a retry
FILE_FIELDS = "id,name,size,webViewLink"
ASSERTION_LIFETIME = 3600  # the longest Google accepts


@dataclass(frozen=True)
class ServiceAccount:
    """The parts of a Google service-account JSON key that sign in. repr hides the key."""

    client_email: str
    private_key: str = field(repr=False)
    token_uri: str = ""
    private_key_id: str = ""


def parse_service_account(text: str, cred_id: str) -> ServiceAccount:
    """The key from the credentials file; errors name the file and field, never a value."""
    where = f"credentials {cred_id!r} file {KEY_FILE!r}"
    try:
        doc = json.loads(text)
    except ValueError:
        raise PermanentError(f"{where} is not JSON (expected a Google service-account key)",
                             reason="CredentialsInvalid") from None
    if not isinstance(doc, dict):
        raise PermanentError(f"{where} is not a JSON object", reason="CredentialsInvalid")
    missing = [k for k in ("client_email", "private_key") if not isinstance(doc.get(k), str)
               or not doc.get(k)]
    if missing:
        raise PermanentError(f"{where} lacks {', '.join(missing)}", reason="CredentialsInvalid")
    if doc.get("type", "service_account") != "service_account":
        raise PermanentError(f"{where} is of type {doc.get('type')!r}, expected service_account",
                             reason="CredentialsInvalid")
    return ServiceAccount(client_email=doc["client_email"], private_key=doc["private_key"],
                          token_uri=str(doc.get("token_uri") or ""),
                          private_key_id=str(doc.get("private_key_id") or ""))


def make_assertion(sa: ServiceAccount, token_uri: str, now: int, cred_id: str) -> str:
    """The signed JWT (RS256) exchanged for an access token: iss = the service account,
    scope = drive.file (only files this app creates), aud = the token endpoint."""
    claims = {"iss": sa.client_email, "scope": SCOPE, "aud": token_uri, "iat": now,
              "exp": now + ASSERTION_LIFETIME}
    headers = {"kid": sa.private_key_id} if sa.private_key_id else None
    try:
        return jwt.encode(claims, sa.private_key, algorithm="RS256", headers=headers)
    except (ValueError, TypeError, jwt.PyJWTError):
        raise PermanentError(f"credentials {cred_id!r}: private_key in {KEY_FILE!r} is not a "
                             f"usable RSA private key (PEM)", reason="CredentialsInvalid") from None


def token_request_body(assertion: str) -> bytes:
    from urllib.parse import urlencode

    return urlencode({"grant_type": GRANT_TYPE, "assertion": assertion}).encode()


def token_error(doc: Any) -> str:
    """`error: description` of an OAuth2 error answer (safe to show: no secrets)."""
    if isinstance(doc, dict) and doc.get("error"):
        desc = doc.get("error_description")
        return f"{doc['error']}: {desc}" if desc else str(doc["error"])
    return "no error details"


def session_url(upload_url: str) -> str:
    """The upload endpoint with uploadType=resumable, the fields to return, and shared-drive
    support."""
    u = URL(upload_url)
    return str(u.update_query({"uploadType": "resumable", "fields": FILE_FIELDS,
                               "supportsAllDrives": "true"}))


def files_url(upload_url: str) -> str:
    """The metadata endpoint beside an upload endpoint (`/upload/drive/v3/files` ->
    `/drive/v3/files`)."""
    u = URL(upload_url)
    path = re.sub(r"^/upload/", "/", u.path)
    return str(u.with_path(path).with_query(None))


def find_query(key: str) -> dict[str, str]:
    """files.list parameters that find a file uploaded before with this idempotency key."""
    return {"q": f"appProperties has {{ key='{APP_PROPERTY}' and value='{key}' }} "
                 f"and trashed = false",
            "fields": f"files({FILE_FIELDS})", "spaces": "drive",
            "supportsAllDrives": "true", "includeItemsFromAllDrives": "true"}


def file_metadata(name: str, folder_id: str, key: str) -> dict[str, Any]:
    return {"name": name, "parents": [folder_id], "appProperties": {APP_PROPERTY: key}}


def content_range(start: int, end: int, total: int) -> str:
    """Content-Range of bytes [start, end) of `total`; a zero-byte file is `bytes */0`."""
    if end <= start:
        return f"bytes */{total}"
    return f"bytes {start}-{end - 1}/{total}"


def received_bytes(range_header: str | None) -> int:
    """How many bytes the server holds, from a 308 answer's Range (`bytes=0-1234` -> 1235);
    no header means none."""
    if not range_header:
        return 0
    m = re.fullmatch(r"\s*bytes=0-(\d+)\s*", range_header)
    if m is None:
        raise PermanentError(f"Drive answered an unreadable Range header {range_header!r}",
                             reason="DriveProtocolError")
    return int(m.group(1)) + 1


def view_link(file: dict[str, Any]) -> str:
    return str(file.get("webViewLink") or f"https://drive.google.com/file/d/{file['id']}/view")
