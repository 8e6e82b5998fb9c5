"""JWT policy of the Reports API: issuing, and every refusal with its status and reason."""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from goreports.api.auth import (ACCESS, REFRESH, AuthConfig, AuthError, bearer_token, issue_token,
                                refresh_access_token, verify_token)

SECRET = "unit-test-secret-0123456789abcdef0123"
CONFIG = AuthConfig(secret_key=SECRET)


def claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    out: dict[str, object] = {"sub": "svc", "typ": ACCESS, "namespaces": ["team-a"], "aud": "go-reports",
                              "iss": "go-reports", "iat": now, "nbf": now, "exp": now + 600}
    out.update(over)
    return {k: v for k, v in out.items() if v is not None}


def refused(token: str, *, kind: str = ACCESS, config: AuthConfig = CONFIG) -> AuthError:
    with pytest.raises(AuthError) as e:
        verify_token(config, token, kind=kind)
    assert token not in e.value.message and SECRET not in e.value.message
    return e.value


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def test_issued_access_token_round_trips() -> None:
    token = issue_token(CONFIG, "billing", "team-a,team-b", tenant="acme")
    caller = verify_token(CONFIG, token)
    assert (caller.subject, caller.namespaces, caller.tenant) == ("billing", ("team-a", "team-b"), "acme")
    assert caller.may_use("team-b") and not caller.may_use("team-c")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    body = jwt.decode(token, SECRET, algorithms=["HS256"], audience="go-reports")
    assert body["typ"] == "access" and body["exp"] - body["iat"] == 2 * 3600 and body["jti"]


def test_lifetimes_come_from_the_config() -> None:
    config = AuthConfig(secret_key=SECRET, access_hours=0.5, refresh_hours=7)
    access = jwt.decode(issue_token(config, "a", ["*"]), options={"verify_signature": False})
    refresh = jwt.decode(issue_token(config, "a", ["*"], kind=REFRESH), options={"verify_signature": False})
    assert access["exp"] - access["iat"] == 1800
    assert refresh["exp"] - refresh["iat"] == 7 * 3600 and refresh["typ"] == "refresh"


def test_star_allows_every_namespace() -> None:
    caller = verify_token(CONFIG, issue_token(CONFIG, "ops", ["*"]))
    caller.require_namespace("anything")


def test_namespace_not_in_claims_is_403() -> None:
    caller = verify_token(CONFIG, issue_token(CONFIG, "svc", ["team-a"]))
    with pytest.raises(AuthError) as e:
        caller.require_namespace("team-b")
    assert (e.value.status, e.value.reason) == (403, "NamespaceForbidden")
    assert "team-b" in e.value.message and "team-a" in e.value.message


@pytest.mark.parametrize("header, reason", [
    (None, "MissingToken"), ("", "MissingToken"), ("Basic dXNlcjpwYXNz", "MalformedToken"),
    ("Bearer", "MalformedToken"), ("Bearer   ", "MalformedToken"), ("   ", "MissingToken"),
])
def test_authorization_header_shapes(header: str | None, reason: str) -> None:
    with pytest.raises(AuthError) as e:
        bearer_token(header)
    assert (e.value.status, e.value.reason) == (401, reason)


def test_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token("bearer abc") == "abc"


def test_the_refusal_matrix() -> None:
    cases = {
        "MalformedToken": "not-a-jwt",
        "TokenExpired": issue_token(CONFIG, "svc", ["team-a"], now=time.time() - 3 * 3600),
        "AlgorithmNotAllowed": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.",
        "BadSignature": jwt.encode(claims(), "another-secret-0123456789abcdef01", algorithm="HS256"),
        "WrongAudience": jwt.encode(claims(aud="someone-else"), SECRET, algorithm="HS256"),
        "WrongIssuer": jwt.encode(claims(iss="evil"), SECRET, algorithm="HS256"),
        "TokenNotYetValid": jwt.encode(claims(nbf=int(time.time()) + 3600), SECRET, algorithm="HS256"),
        "MissingClaim": jwt.encode(claims(exp=None), SECRET, algorithm="HS256"),
        "InvalidClaims": jwt.encode(claims(namespaces="Not A Namespace"), SECRET, algorithm="HS256"),
    }
    for reason, token in cases.items():
        err = refused(token)
        assert (err.status, err.reason) == (401, reason), (reason, err.message)


def test_iat_in_the_future_is_refused() -> None:
    assert refused(jwt.encode(claims(iat=int(time.time()) + 3600), SECRET, algorithm="HS256")).reason \
        == "TokenNotYetValid"


def test_other_hmac_algorithms_are_not_on_the_list() -> None:
    err = refused(jwt.encode(claims(), SECRET * 2, algorithm="HS512"))
    assert err.reason == "AlgorithmNotAllowed" and "HS256" in err.message


def test_refresh_token_is_not_an_access_token_and_back() -> None:
    refresh = issue_token(CONFIG, "svc", ["team-a"], kind=REFRESH)
    access = issue_token(CONFIG, "svc", ["team-a"])
    assert refused(refresh, kind=ACCESS).reason == "WrongTokenType"
    assert refused(access, kind=REFRESH).reason == "WrongTokenType"
    assert refused(jwt.encode(claims(typ=None), SECRET, algorithm="HS256")).reason == "WrongTokenType"


def test_refresh_gives_an_access_token_with_the_same_identity() -> None:
    refresh = issue_token(CONFIG, "svc", ["team-a", "team-b"], tenant="acme", kind=REFRESH)
    token, caller = refresh_access_token(CONFIG, refresh)
    again = verify_token(CONFIG, token)
    assert again.subject == caller.subject == "svc"
    assert again.namespaces == ("team-a", "team-b") and again.tenant == "acme"


def test_rs256_is_accepted_only_with_a_public_key(rsa_pair: tuple[str, str]) -> None:
    private, public = rsa_pair
    token = jwt.encode(claims(), private, algorithm="RS256")
    assert refused(token).reason == "AlgorithmNotAllowed"
    config = AuthConfig(secret_key=SECRET, public_key=public)
    assert config.algorithms == ("HS256", "RS256")
    assert verify_token(config, token).subject == "svc"


def test_hs256_signed_with_the_public_key_is_refused(rsa_pair: tuple[str, str]) -> None:
    """The classic algorithm confusion: the public key used as an HMAC secret."""
    _, public = rsa_pair
    config = AuthConfig(secret_key=SECRET, public_key=public)
    header = b64({"alg": "HS256", "typ": "JWT"})
    payload = b64(claims())
    import hashlib
    import hmac

    sig = hmac.new(public.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    assert refused(forged, config=config).reason == "BadSignature"


def test_config_from_env(tmp_path: Path, rsa_pair: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="JWT_SECRET_KEY"):
        AuthConfig.from_env({})
    pem = tmp_path / "public.pem"
    pem.write_text(rsa_pair[1])
    config = AuthConfig.from_env({"JWT_SECRET_KEY": "k" * 32, "JWT_EXPIRE_HOURS": "2",
                                  "JWT_REFRESH_HOURS": "7", "JWT_PUBLIC_KEY_FILE": str(pem),
                                  "JWT_AUDIENCE": "reports"})
    assert (config.access_hours, config.refresh_hours, config.audience) == (2.0, 7.0, "reports")
    assert config.public_key == rsa_pair[1]
    with pytest.raises(ValueError, match="JWT_PUBLIC_KEY_FILE"):
        AuthConfig.from_env({"JWT_SECRET_KEY": SECRET, "JWT_PUBLIC_KEY_FILE": str(tmp_path / "nope")})
    with pytest.raises(ValueError, match="greater than 0"):
        AuthConfig.from_env({"JWT_SECRET_KEY": SECRET, "JWT_EXPIRE_HOURS": "0"})
    with pytest.raises(ValueError, match="32 bytes") as e:
        AuthConfig.from_env({"JWT_SECRET_KEY": "secret!"})
    assert "secret!" not in str(e.value)


@pytest.mark.parametrize("kwargs", [
    {"subject": "", "namespaces": ["a"]}, {"subject": "x\ny", "namespaces": ["a"]},
    {"subject": "x", "namespaces": []}, {"subject": "x", "namespaces": ["Team A"]},
    {"subject": "x", "namespaces": ["a"], "kind": "id"},
])
def test_issue_refuses_bad_input(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        issue_token(CONFIG, **kwargs)  # type: ignore[arg-type]
