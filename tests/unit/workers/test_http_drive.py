"""Pure pieces of the Drive dispatcher: the service-account key, the JWT assertion (verified
with the key's public half), and the resumable-upload URLs and headers."""
from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from yarl import URL

from goreports.core.errors import PermanentError
from goreports.workers.dispatchers._drive_auth import (GRANT_TYPE, SCOPE, content_range,
                                                       files_url, find_query, make_assertion,
                                                       parse_service_account, received_bytes,
                                                       session_url, token_error,
                                                       token_request_body, view_link)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_json(key: rsa.RSAPrivateKey, **extra: str) -> str:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return json.dumps({"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com",
                       "private_key": pem, "private_key_id": "kid-1",
                       "token_uri": "https://oauth2.googleapis.com/token", **extra})


def test_assertion_is_rs256_with_the_google_claims(key: rsa.RSAPrivateKey) -> None:
    sa = parse_service_account(key_json(key), "drive-sa")
    assert "PRIVATE" not in repr(sa)
    token = make_assertion(sa, "https://oauth2.googleapis.com/token", 1_700_000_000, "drive-sa")
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    claims = jwt.decode(token, key.public_key(), algorithms=["RS256"],
                        audience="https://oauth2.googleapis.com/token",
                        options={"verify_exp": False, "verify_iat": False})
    assert claims == {"iss": "sa@p.iam.gserviceaccount.com", "scope": SCOPE,
                      "aud": "https://oauth2.googleapis.com/token", "iat": 1_700_000_000,
                      "exp": 1_700_003_600}
    body = token_request_body(token).decode()
    assert body.startswith("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&")
    assert GRANT_TYPE.endswith("jwt-bearer")


@pytest.mark.parametrize("text,match", [
    ("not json", "is not JSON"), ("[1]", "not a JSON object"),
    ('{"client_email": "a@b"}', "lacks private_key"),
    ('{"type": "authorized_user", "client_email": "a", "private_key": "k"}', "service_account"),
])
def test_bad_keys(text: str, match: str) -> None:
    with pytest.raises(PermanentError, match=match) as e:
        parse_service_account(text, "drive-sa")
    assert e.value.reason == "CredentialsInvalid" and "'drive-sa'" in str(e.value)


def test_unusable_private_key_is_not_shown(key: rsa.RSAPrivateKey) -> None:
    sa = parse_service_account(json.dumps({"client_email": "a@b", "private_key": "SECRETKEY"}),
                               "drive-sa")
    with pytest.raises(PermanentError, match="not a usable RSA") as e:
        make_assertion(sa, "https://t", 1, "drive-sa")
    assert "SECRETKEY" not in str(e.value)


def test_urls() -> None:
    s = URL(session_url("https://www.googleapis.com/upload/drive/v3/files"))
    assert s.path == "/upload/drive/v3/files" and s.query["uploadType"] == "resumable"
    assert s.query["fields"] == "id,name,size,webViewLink"
    assert s.query["supportsAllDrives"] == "true"
    assert files_url("https://www.googleapis.com/upload/drive/v3/files?uploadType=resumable") == \
        "https://www.googleapis.com/drive/v3/files"
    q = find_query("ab12")
    assert q["q"] == ("appProperties has { key='goreportsKey' and value='ab12' } "
                      "and trashed = false")


def test_ranges() -> None:
    assert content_range(0, 262144, 640000) == "bytes 0-262143/640000"
    assert content_range(0, 0, 0) == "bytes */0"
    assert received_bytes(None) == 0 and received_bytes("bytes=0-262143") == 262144
    with pytest.raises(PermanentError):
        received_bytes("bytes=5-9")


def test_small_helpers() -> None:
    assert token_error({"error": "invalid_grant", "error_description": "Bad sig"}) == \
        "invalid_grant: Bad sig"
    assert token_error("x") == "no error details"
    assert view_link({"id": "f1"}) == "https://drive.google.com/file/d/f1/view"
    assert view_link({"id": "f1", "webViewLink": "https://w"}) == "https://w"
