"""JWT access and refresh tokens of the Reports API: issuing and checking them.

Why a module of its own: REST, gRPC and `goreports token` must apply one policy, and the policy is
pure (a token and a clock in, claims or a refusal out), so it is unit-tested without a server.

The policy (DESIGN §9):

- a fixed algorithm list: HS256 with `JWT_SECRET_KEY`, plus RS256 when `JWT_PUBLIC_KEY_FILE`
  names a PEM public key. The algorithm comes from that list, never from the token: `alg: none`
  and an HS256 token "signed" with the public key are refused;
- `exp`, `nbf`, `iat`, `aud` (and `iss`) are required and checked, with a small leeway for
  clock skew; an `iat` in the future is refused;
- the `typ` claim makes access and refresh tokens distinct: an API call takes only `access`,
  the refresh endpoint only `refresh`;
- `sub` names the caller (recorded on each ReportRequest); `namespaces` (a list, `"*"` = every
  namespace) says where it may act; `tenant` is carried to the JWT validator stage.

Every refusal is an `AuthError` with an HTTP status (401 or 403), a CamelCase reason and a message
that says what to do. Neither tokens nor keys ever appear in a message.
"""
from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

ACCESS = "access"
REFRESH = "refresh"
ALL_NAMESPACES = "*"
DEFAULT_AUDIENCE = "go-reports"
DEFAULT_ISSUER = "go-reports"
ISSUING_ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "aud", "iss", "sub")
# A subject ends up in an annotation and in logs: keep it to one printable line.
_SUBJECT = re.compile(r"^[^\x00-\x1f\x7f]{1,253}$")
_NAMESPACE = re.compile(r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$")


class AuthError(Exception):
    """A request's credentials were refused: 401 (who are you?) or 403 (not allowed here)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def _unauthorized(reason: str, message: str) -> AuthError:
    return AuthError(401, reason, message)


@dataclass(frozen=True)
class Caller:
    """Who is calling, from a verified access token."""

    subject: str
    namespaces: tuple[str, ...]
    tenant: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def may_use(self, namespace: str) -> bool:
        return ALL_NAMESPACES in self.namespaces or namespace in self.namespaces

    def require_namespace(self, namespace: str) -> None:
        """Raise 403 NamespaceForbidden unless the token's `namespaces` claim covers it."""
        if not self.may_use(namespace):
            allowed = ", ".join(self.namespaces) or "none"
            raise AuthError(403, "NamespaceForbidden",
                            f"the token of {self.subject!r} does not allow namespace {namespace!r} "
                            f"(its namespaces claim allows: {allowed}); ask for a token that "
                            f"lists it (`goreports token issue --namespaces ...`)")


@dataclass(frozen=True, kw_only=True)
class AuthConfig:
    """Keys and lifetimes, from `JWT_*` variables."""

    secret_key: str
    public_key: str | None = None
    audience: str = DEFAULT_AUDIENCE
    issuer: str = DEFAULT_ISSUER
    access_hours: float = 2.0
    refresh_hours: float = 168.0
    leeway_seconds: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "AuthConfig":
        e = os.environ if env is None else env
        secret = e.get("JWT_SECRET_KEY", "")
        if not secret:
            raise ValueError("JWT_SECRET_KEY is not set: the API signs and checks tokens with it "
                             "(HS256); set it from a Secret")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"JWT_SECRET_KEY is shorter than {MIN_SECRET_BYTES} bytes, too weak for "
                             f"HS256 (RFC 7518 section 3.2); generate one with "
                             f"`openssl rand -base64 48`")
        public_key = None
        if e.get("JWT_PUBLIC_KEY_FILE"):
            path = Path(e["JWT_PUBLIC_KEY_FILE"])
            try:
                public_key = path.read_text()
            except OSError as err:
                raise ValueError(f"JWT_PUBLIC_KEY_FILE={path}: cannot read the RS256 public key "
                                 f"({err.strerror})") from err
        try:
            access = float(e.get("JWT_EXPIRE_HOURS", "2") or 2)
            refresh = float(e.get("JWT_REFRESH_HOURS", "168") or 168)
        except ValueError as err:
            raise ValueError(f"JWT_EXPIRE_HOURS / JWT_REFRESH_HOURS must be numbers of hours: {err}"
                             ) from err
        if access <= 0 or refresh <= 0:
            raise ValueError("JWT_EXPIRE_HOURS and JWT_REFRESH_HOURS must be greater than 0")
        return cls(secret_key=secret, public_key=public_key,
                   audience=e.get("JWT_AUDIENCE", DEFAULT_AUDIENCE) or DEFAULT_AUDIENCE,
                   issuer=e.get("JWT_ISSUER", DEFAULT_ISSUER) or DEFAULT_ISSUER,
                   access_hours=access, refresh_hours=refresh)

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The fixed list of accepted algorithms."""
        return ("HS256", "RS256") if self.public_key else ("HS256",)

    def key_for(self, algorithm: str) -> str:
        return self.public_key if algorithm == "RS256" and self.public_key else self.secret_key


def _clean_namespaces(namespaces: Any) -> tuple[str, ...]:
    if isinstance(namespaces, str):
        namespaces = [n.strip() for n in namespaces.split(",") if n.strip()]
    if not isinstance(namespaces, (list, tuple)) or not namespaces:
        raise ValueError("namespaces must be a non-empty list of namespace names or '*'")
    for n in namespaces:
        if not isinstance(n, str) or not _NAMESPACE.match(n):
            raise ValueError(f"namespace {n!r} is not a namespace name (a DNS label) or '*'")
    return tuple(dict.fromkeys(namespaces))


def issue_token(config: AuthConfig, subject: str, namespaces: Any, *, tenant: str | None = None,
                kind: str = ACCESS, hours: float | None = None, now: float | None = None) -> str:
    """A signed HS256 token of `kind` (access or refresh) for `subject`."""
    if kind not in (ACCESS, REFRESH):
        raise ValueError(f"token kind must be {ACCESS!r} or {REFRESH!r}, not {kind!r}")
    if not isinstance(subject, str) or not _SUBJECT.match(subject):
        raise ValueError("subject must be 1 to 253 printable characters")
    if tenant is not None and (not isinstance(tenant, str) or not _SUBJECT.match(tenant)):
        raise ValueError("tenant must be 1 to 253 printable characters")
    lifetime = hours if hours is not None else (
        config.access_hours if kind == ACCESS else config.refresh_hours)
    if lifetime <= 0:
        raise ValueError("the token lifetime must be greater than 0 hours")
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "sub": subject, "typ": kind, "namespaces": list(_clean_namespaces(namespaces)),
        "aud": config.audience, "iss": config.issuer, "iat": issued, "nbf": issued,
        "exp": issued + int(lifetime * 3600), "jti": uuid.uuid4().hex}
    if tenant:
        claims["tenant"] = tenant
    return jwt.encode(claims, config.secret_key, algorithm=ISSUING_ALGORITHM)


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (401 MissingToken otherwise)."""
    if not header or not header.strip():
        raise _unauthorized("MissingToken", "no access token: send `Authorization: Bearer <token>` "
                                            "(issue one with `goreports token issue`)")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("MalformedToken", "the Authorization header must be `Bearer <token>`")
    return token.strip()


def verify_token(config: AuthConfig, token: str, *, kind: str = ACCESS) -> Caller:
    """Check signature, algorithm, time claims, audience, issuer and type; return the caller."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise _unauthorized("MalformedToken", "the token is not a JWT (header.payload.signature "
                                              "in base64url)") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in config.algorithms:
        raise _unauthorized("AlgorithmNotAllowed",
                            f"token algorithm {str(alg)[:20]!r} is not accepted; this API accepts "
                            f"{', '.join(config.algorithms)}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, config.key_for(alg), algorithms=[alg], audience=config.audience,
            issuer=config.issuer, leeway=config.leeway_seconds,
            options={"require": list(REQUIRED_CLAIMS), "verify_iat": True})
    except jwt.ExpiredSignatureError:
        raise _unauthorized("TokenExpired", "the token has expired: get a new access token "
                                            "(POST /v1/auth/refresh with your refresh token)"
                            ) from None
    except jwt.ImmatureSignatureError:
        raise _unauthorized("TokenNotYetValid", "the token is not valid yet (nbf or iat lies in "
                                                "the future; check the issuer's clock)") from None
    except jwt.InvalidSignatureError:
        raise _unauthorized("BadSignature", "the token's signature does not match this API's key "
                                            "(issued for another installation?)") from None
    except jwt.InvalidAudienceError:
        raise _unauthorized("WrongAudience", f"the token is not meant for this API (aud must be "
                                             f"{config.audience!r})") from None
    except jwt.InvalidIssuerError:
        raise _unauthorized("WrongIssuer", f"the token's issuer is not {config.issuer!r}") from None
    except jwt.MissingRequiredClaimError as e:
        raise _unauthorized("MissingClaim", f"the token lacks the {e.claim!r} claim") from None
    except jwt.DecodeError:
        raise _unauthorized("MalformedToken", "the token cannot be decoded") from None
    except jwt.InvalidTokenError as e:  # iat not a number, exp not a number, ...
        raise _unauthorized("InvalidClaims", f"the token's claims are invalid ({type(e).__name__})"
                            ) from None
    typ = claims.get("typ")
    if typ != kind:
        hint = ("use an access token here; a refresh token only buys a new access token at "
                "POST /v1/auth/refresh") if kind == ACCESS else (
                "send the refresh token (typ=refresh) here, not an access token")
        raise _unauthorized("WrongTokenType", f"expected a {kind} token, got typ={str(typ)[:20]!r}: "
                                              f"{hint}")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not _SUBJECT.match(sub):
        raise _unauthorized("InvalidClaims", "the token's sub must be 1 to 253 printable characters")
    try:
        namespaces = _clean_namespaces(claims.get("namespaces"))
    except ValueError as e:
        raise _unauthorized("InvalidClaims", f"the token's namespaces claim is invalid: {e}") from None
    tenant = claims.get("tenant")
    if tenant is not None and (not isinstance(tenant, str) or not _SUBJECT.match(tenant)):
        raise _unauthorized("InvalidClaims", "the token's tenant claim must be a short string")
    return Caller(subject=sub, namespaces=namespaces, tenant=tenant or None, claims=claims)


def refresh_access_token(config: AuthConfig, refresh_token: str) -> tuple[str, Caller]:
    """A new access token for the holder of a valid refresh token (same sub, namespaces, tenant)."""
    caller = verify_token(config, refresh_token, kind=REFRESH)
    token = issue_token(config, caller.subject, list(caller.namespaces), tenant=caller.tenant)
    return token, caller
