"""Pure logic of the `jwt` validator: verify a token, and decide row by row whether a row may pass.

Why a separate module: the security decisions (which algorithm, which key, which claims are
required, how a column is compared with a claim) are small pure functions that unit tests can
pin down exhaustively without a bus; the stage module only moves rows.

Token rules (RFC 8725, the seed's Broken Access Control check):

- The accepted algorithms are the task's fixed list, never the token header's choice. `none` is
  refused even when listed. The header's `alg` only selects, *within* the fixed list, which key
  file is used: HS* verify with the shared `secret`; RS*/PS*/ES*/EdDSA with `public.pem`. pyjwt
  is then given only the algorithms of that family, so an RSA public key can never be used as an
  HMAC secret (algorithm confusion).
- `exp` is required and enforced; `nbf` and `iat` are checked when present; `aud` when an
  audience is configured, `iss` when an issuer is. A leeway of LEEWAY_SECONDS absorbs clock skew.
- Errors say what is wrong with the token (reason TokenExpired, TokenInvalid or
  AlgorithmNotAllowed) and never contain the token, a claim value or a key.

Row rules. A row passes a rule when the text of its column equals the text of the claim (or of
one of its items, when the claim is a list). Text, because a tenant claim is usually a JSON string
("7") while the column may be an integer (7): numbers compare by their canonical decimal text
(7, 7.0 and Decimal("7.00") are all "7"), booleans as true/false, dates as ISO text, strings as
they are (case-sensitive). A NULL cell never passes (it belongs to no tenant). A claim that is an
object never matches. A claim name with dots (`org.tenant`) is looked up as a path when no claim
has the literal name.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

import jwt

from goreports.core.errors import PermanentError

LEEWAY_SECONDS = 30
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
PUBLIC_KEY_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                   "ES256", "ES384", "ES512", "EdDSA"})
SECRET_FILE = "secret"
PUBLIC_KEY_FILE = "public.pem"
MODES = ("filter", "deny")


# -- the token ------------------------------------------------------------------------------------

def allowed_algorithms(requested: Sequence[str], where: str) -> list[str]:
    """The task's algorithm list, checked: not empty, no `none`, only algorithms we know."""
    algs = list(dict.fromkeys(a.strip() for a in requested if a.strip()))
    if not algs:
        raise PermanentError(f"{where}: `algorithms` is empty; list the algorithms the token "
                             f"issuer signs with (e.g. [HS256] or [RS256])", reason="InvalidTask")
    if any(a.lower() == "none" for a in algs):
        raise PermanentError(f"{where}: the algorithm 'none' (unsigned tokens) is never "
                             f"accepted; remove it from `algorithms`", reason="InvalidTask")
    unknown = [a for a in algs if a not in HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS]
    if unknown:
        raise PermanentError(f"{where}: unknown algorithm(s) {unknown} in `algorithms` (known: "
                             f"{', '.join(sorted(HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS))})",
                             reason="InvalidTask")
    return algs


def key_file_for(alg: str) -> str:
    """The credentials file that verifies `alg`: `secret` for HMAC, `public.pem` otherwise."""
    return SECRET_FILE if alg in HMAC_ALGORITHMS else PUBLIC_KEY_FILE


def same_family(alg: str, algorithms: Sequence[str]) -> list[str]:
    """The algorithms of `algorithms` that use the same key file as `alg`."""
    hmac = alg in HMAC_ALGORITHMS
    return [a for a in algorithms if (a in HMAC_ALGORITHMS) == hmac]


def _token_error(where: str, what: str, reason: str = "TokenInvalid") -> PermanentError:
    return PermanentError(f"{where}: the caller's token was refused: {what}", reason=reason)


def verify_token(token: str, *, algorithms: Sequence[str], key_for: Callable[[str], str],
                 audience: str = "", issuer: str = "", where: str = "jwt validator",
                 leeway: float = LEEWAY_SECONDS) -> dict[str, Any]:
    """Verify `token` and return its claims, or raise PermanentError with a reason.

    `algorithms` is the checked fixed list (see allowed_algorithms); `key_for(file)` returns the
    content of a key file (`secret` or `public.pem`) and may raise PermanentError itself.
    """
    token = token.strip()
    if not token:
        raise _token_error(where, "it is empty")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _token_error(where, "it is not a JWT (its header cannot be decoded)") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise _token_error(where, "it is unsigned (alg 'none'); only signed tokens are accepted",
                           "AlgorithmNotAllowed")
    if alg not in algorithms:
        shown = alg if alg in HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS else "an unknown algorithm"
        raise _token_error(where, f"it is signed with {shown}, but only "
                                  f"{', '.join(algorithms)} are allowed", "AlgorithmNotAllowed")
    key = key_for(key_file_for(alg))
    required = ["exp"] + (["aud"] if audience else []) + (["iss"] if issuer else [])
    options: dict[str, Any] = {"require": required, "verify_signature": True,
                               "verify_exp": True, "verify_nbf": True, "verify_iat": True,
                               "verify_aud": bool(audience), "verify_iss": bool(issuer)}
    try:
        claims = jwt.decode(token, key, algorithms=same_family(alg, algorithms),
                            options=options,  # type: ignore[arg-type]
                            audience=audience or None, issuer=issuer or None, leeway=leeway)
    except jwt.ExpiredSignatureError:
        raise _token_error(where, "it has expired (exp is in the past); ask the caller for a "
                                  "fresh token", "TokenExpired") from None
    except jwt.ImmatureSignatureError:
        raise _token_error(where, "it is not valid yet (nbf or iat is in the future)") from None
    except jwt.MissingRequiredClaimError as e:
        raise _token_error(where, f"it has no {e.claim!r} claim, which is required") from None
    except jwt.InvalidAudienceError:
        raise _token_error(where, f"its audience (aud) is not {audience!r}") from None
    except jwt.InvalidIssuerError:
        raise _token_error(where, f"its issuer (iss) is not {issuer!r}") from None
    except jwt.InvalidSignatureError:
        raise _token_error(where, "its signature does not match the configured key (signed "
                                  "with another key, or altered)") from None
    except jwt.InvalidAlgorithmError:
        raise _token_error(where, f"its algorithm is not one of {', '.join(algorithms)}",
                           "AlgorithmNotAllowed") from None
    except jwt.InvalidKeyError:
        raise PermanentError(f"{where}: the configured key file {key_file_for(alg)!r} cannot "
                             f"verify {alg} tokens (wrong kind of key)",
                             reason="InvalidKey") from None
    except jwt.InvalidIssuedAtError:
        raise _token_error(where, "its iat claim is not a number") from None
    except jwt.DecodeError:
        raise _token_error(where, "it is malformed (a part cannot be decoded, or a time claim "
                                  "is not a number)") from None
    except jwt.PyJWTError as e:
        raise _token_error(where, f"{type(e).__name__}") from None
    except (ValueError, TypeError):
        # cryptography could not load the key (e.g. public.pem is not a PEM public key).
        raise PermanentError(f"{where}: the configured key file {key_file_for(alg)!r} is not a "
                             f"usable {alg} key", reason="InvalidKey") from None
    return claims


# -- row rules ------------------------------------------------------------------------------------

_MISSING = object()


def claim_value(claims: Mapping[str, Any], name: str) -> Any:
    """The claim `name`, or a dotted path into nested claims; _MISSING when absent."""
    if name in claims:
        return claims[name]
    cur: Any = claims
    for part in name.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def claim_allows(claim: Any, tenant: str) -> bool:
    """Whether a `tenant` claim (a value or a list of values) covers `tenant`."""
    if isinstance(claim, (list, tuple)):
        return any(match_text(c) == tenant for c in claim)
    return claim is not None and match_text(claim) == tenant


def match_text(value: Any) -> str | None:
    """The text a cell or claim is compared by; None for values that never match."""
    if value is None or isinstance(value, (dict, list, tuple)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "0") else text
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


@dataclass(frozen=True)
class BoundRule:
    """A rule bound to one dataset's column index and one token's allowed values."""

    name: str
    column: str
    claim: str
    index: int
    allowed: frozenset[str]

    def passes(self, row: Sequence[Any]) -> bool:
        text = match_text(row[self.index])
        return text is not None and text in self.allowed


def bind_rules(rules: Sequence[Any], claims: Mapping[str, Any], column_names: Sequence[str],
               dataset: str, where: str) -> list[BoundRule]:
    """Bind `RowRule`s (name, column, claim) to a dataset's columns and the token's claims.

    A column the dataset lacks, or a claim the token lacks, fails the report: checking nothing
    would let every row through (or silently drop all of them)."""
    names = list(column_names)
    bound: list[BoundRule] = []
    for rule in rules:
        if rule.column not in names:
            raise PermanentError(
                f"{where}: rule {rule.name!r} checks column {rule.column!r}, but dataset "
                f"{dataset!r} has no such column (columns: {', '.join(names) or 'none'}); fix the "
                f"rule or list the datasets it applies to in `datasets`", reason="UnknownColumn")
        value = claim_value(claims, rule.claim)
        if value is _MISSING or value is None:
            raise _token_error(where, f"it has no claim {rule.claim!r}, which rule "
                                      f"{rule.name!r} needs")
        items = value if isinstance(value, (list, tuple)) else [value]
        allowed = frozenset(t for t in (match_text(v) for v in items) if t is not None)
        bound.append(BoundRule(rule.name, rule.column, rule.claim, names.index(rule.column),
                               allowed))
    return bound


def first_broken(row: Sequence[Any], rules: Sequence[BoundRule]) -> BoundRule | None:
    """The first rule `row` breaks, or None when it passes them all."""
    for rule in rules:
        if not rule.passes(row):
            return rule
    return None


def filter_rows(rows: Sequence[Sequence[Any]], rules: Sequence[BoundRule]
                ) -> list[Sequence[Any]]:
    """The rows that pass every rule, in order."""
    if not rules:
        return list(rows)
    return [row for row in rows if all(r.passes(row) for r in rules)]


def deny_error(where: str, rule: BoundRule, dataset: str, row_number: int) -> PermanentError:
    """The error of deny mode: names rule, dataset and row number, never the row's values."""
    return PermanentError(
        f"{where}: row {row_number} of dataset {dataset!r} breaks rule {rule.name!r} (its "
        f"{rule.column!r} is not the token's {rule.claim!r} claim); the caller may not see this "
        f"data, so the report was stopped", reason="AccessDenied")
