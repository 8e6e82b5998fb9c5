"""The JWT validator's pure decisions: which tokens pass, and which rows a token may see."""
from __future__ import annotations

import base64
import datetime as dt
import json
import time
from decimal import Decimal
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.workers.validators import _rules

SECRET = "s3cr3t-for-tests-only-0123456789abcdef"  # 32+ bytes: no short-key warning


def rsa_pair() -> tuple[Any, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return key, pem


RSA_KEY, RSA_PUBLIC = rsa_pair()


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "tenant": "acme", "iat": now, "exp": now + 600, **extra}


def keys(secret: str = SECRET, public: str = RSA_PUBLIC):  # type: ignore[no-untyped-def]
    files = {"secret": secret, "public.pem": public}
    return lambda name: files[name]


def verify(token: str, algorithms: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    return _rules.verify_token(token, algorithms=algorithms or ["HS256"], key_for=keys(), **kw)


def unsigned(payload: dict[str, Any]) -> str:
    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def refused(token: str, reason: str, algorithms: list[str] | None = None, **kw: Any) -> str:
    with pytest.raises(PermanentError) as e:
        verify(token, algorithms, **kw)
    assert e.value.reason == reason, str(e.value)
    text = str(e.value)
    assert not token or token not in text
    assert SECRET not in text and "BEGIN PUBLIC KEY" not in text
    for part in token.split("."):
        assert not part or part not in text  # not even a piece of the token
    return text


def test_valid_hs256_and_rs256_tokens_pass() -> None:
    assert verify(jwt.encode(claims(), SECRET, "HS256"))["tenant"] == "acme"
    token = jwt.encode(claims(), RSA_KEY, "RS256")
    assert verify(token, ["RS256"])["sub"] == "alice"
    assert verify(token, ["HS256", "RS256"])["sub"] == "alice"  # family picks the key file


def test_es256_uses_public_pem() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    token = jwt.encode(claims(), key, "ES256")
    got = _rules.verify_token(token, algorithms=["ES256"], key_for=keys(public=pem))
    assert got["tenant"] == "acme"


def test_expired_token() -> None:
    past = int(time.time()) - 3600
    text = refused(jwt.encode(claims(exp=past, iat=past - 60), SECRET, "HS256"), "TokenExpired")
    assert "expired" in text


def test_exp_is_required() -> None:
    body = claims()
    del body["exp"]
    assert "'exp'" in refused(jwt.encode(body, SECRET, "HS256"), "TokenInvalid")


def test_not_yet_valid() -> None:
    later = int(time.time()) + 3600
    refused(jwt.encode(claims(nbf=later), SECRET, "HS256"), "TokenInvalid")
    refused(jwt.encode(claims(iat=later), SECRET, "HS256"), "TokenInvalid")


def test_leeway_absorbs_small_skew() -> None:
    token = jwt.encode(claims(exp=int(time.time()) - 5), SECRET, "HS256")
    assert verify(token)["tenant"] == "acme"


def test_alg_none_is_refused_even_when_listed() -> None:
    assert "unsigned" in refused(unsigned(claims()), "AlgorithmNotAllowed")
    with pytest.raises(PermanentError, match="'none'") as e:
        _rules.allowed_algorithms(["HS256", "none"], "step x")
    assert e.value.reason == "InvalidTask"


def test_wrong_key() -> None:
    token = jwt.encode(claims(), "another-secret-0123456789abcdef-xyz", "HS256")
    assert "signature" in refused(token, "TokenInvalid")
    other, _ = rsa_pair()
    refused(jwt.encode(claims(), other, "RS256"), "TokenInvalid", ["RS256"])


def test_hs256_token_when_only_rs256_is_allowed() -> None:
    text = refused(jwt.encode(claims(), SECRET, "HS256"), "AlgorithmNotAllowed", ["RS256"])
    assert "HS256" in text and "RS256" in text


def test_algorithm_confusion_rsa_public_key_as_hmac_secret() -> None:
    # The attacker knows the public key and signs an HS256 token with it as the HMAC secret.
    import hashlib
    import hmac

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    signing = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}." \
              f"{b64(json.dumps(claims()).encode())}"
    sig = hmac.new(RSA_PUBLIC.encode(), signing.encode(), hashlib.sha256).digest()
    forged = f"{signing}.{b64(sig)}"
    refused(forged, "AlgorithmNotAllowed", ["RS256"])
    # Even with both families allowed, HS256 is checked with the `secret` file, never the PEM.
    refused(forged, "TokenInvalid", ["RS256", "HS256"])
    # And a deployment that put the PEM into `secret` is refused by pyjwt as a wrong key kind.
    with pytest.raises(PermanentError) as e:
        _rules.verify_token(forged, algorithms=["HS256"], key_for=keys(secret=RSA_PUBLIC))
    assert e.value.reason == "InvalidKey"


def test_audience_and_issuer() -> None:
    token = jwt.encode(claims(aud="goreports", iss="https://idp"), SECRET, "HS256")
    assert verify(token, audience="goreports", issuer="https://idp")["sub"] == "alice"
    assert "audience" in refused(token, "TokenInvalid", audience="other")
    assert "issuer" in refused(token, "TokenInvalid", issuer="https://evil")
    bare = jwt.encode(claims(), SECRET, "HS256")
    assert "'aud'" in refused(bare, "TokenInvalid", audience="goreports")
    assert verify(token)["aud"] == "goreports"  # no audience configured: aud not checked


def test_malformed_tokens() -> None:
    refused("not-a-token", "TokenInvalid")
    refused("", "TokenInvalid")
    good = jwt.encode(claims(), SECRET, "HS256")
    head, body, sig = good.split(".")
    refused(f"{head}.{body}x.{sig}", "TokenInvalid")


def test_bad_public_key_file() -> None:
    token = jwt.encode(claims(), RSA_KEY, "RS256")
    with pytest.raises(PermanentError) as e:
        _rules.verify_token(token, algorithms=["RS256"], key_for=keys(public="not a pem"))
    assert e.value.reason == "InvalidKey" and "public.pem" in str(e.value)


def test_allowed_algorithms() -> None:
    assert _rules.allowed_algorithms([" HS256", "RS256", "HS256"], "x") == ["HS256", "RS256"]
    for bad in ([], ["HS1"]):
        with pytest.raises(PermanentError):
            _rules.allowed_algorithms(bad, "x")


# -- rows -----------------------------------------------------------------------------------------

def rule(name: str = "same-tenant", column: str = "tenant_id", claim: str = "tenant"
         ) -> tasks_pb2.RowRule:
    return tasks_pb2.RowRule(name=name, column=column, claim=claim)


@pytest.mark.parametrize("cell,claim,ok", [
    ("acme", "acme", True), ("Acme", "acme", False), (7, "7", True), ("7", 7, True),
    (Decimal("7.00"), 7, True), (7.0, "7", True), (7.5, "7.5", True), (None, "acme", False),
    (True, True, True), (dt.date(2024, 1, 2), "2024-01-02", True), ("x", {"a": 1}, False),
    (3, [1, 2, 3], True), ("4", [1, 2, 3], False), (Decimal("-0"), 0, True),
])
def test_cell_and_claim_compare_as_text(cell: Any, claim: Any, ok: bool) -> None:
    bound = _rules.bind_rules([rule()], {"tenant": claim}, ["tenant_id"], "d", "w")
    assert bound[0].passes([cell]) is ok


def test_filter_and_first_broken() -> None:
    rules = _rules.bind_rules([rule(), rule("region", "region", "org.region")],
                              {"tenant": ["a", "b"], "org": {"region": "EU"}},
                              ["id", "tenant_id", "region"], "orders", "w")
    rows = [[1, "a", "EU"], [2, "c", "EU"], [3, "b", "US"], [4, "b", "EU"], [5, None, "EU"]]
    assert _rules.filter_rows(rows, rules) == [[1, "a", "EU"], [4, "b", "EU"]]
    assert _rules.first_broken(rows[1], rules).name == "same-tenant"  # type: ignore[union-attr]
    assert _rules.first_broken(rows[2], rules).name == "region"  # type: ignore[union-attr]
    assert _rules.filter_rows(rows, []) == rows


def test_missing_column_and_missing_claim() -> None:
    with pytest.raises(PermanentError) as e:
        _rules.bind_rules([rule()], {"tenant": "a"}, ["id", "tenant"], "orders", "step v")
    assert e.value.reason == "UnknownColumn"
    assert "'same-tenant'" in str(e.value) and "'orders'" in str(e.value)
    with pytest.raises(PermanentError) as e:
        _rules.bind_rules([rule()], {"sub": "x"}, ["tenant_id"], "orders", "step v")
    assert e.value.reason == "TokenInvalid" and "'tenant'" in str(e.value)


def test_deny_error_names_rule_dataset_and_row_only() -> None:
    bound = _rules.bind_rules([rule()], {"tenant": "acme"}, ["tenant_id"], "orders", "w")[0]
    err = _rules.deny_error("step v", bound, "orders", 42)
    assert err.reason == "AccessDenied"
    assert "row 42" in str(err) and "'orders'" in str(err) and "'same-tenant'" in str(err)
    assert "acme" not in str(err)  # neither the claim value nor the row's value
