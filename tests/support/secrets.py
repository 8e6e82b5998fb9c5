"""The test secrets' values, in one place, so that the whole suite's outputs can be grepped for them.

Why one module: `support.secret_scan` fails the test session when any value listed in
`ALL` appears in a file the suite wrote (logs, reports, captured streams), and the security
tests assert the same for status, Events, the events / dead-letter / audit streams. A secret a
test uses that is not listed here is a secret nobody checks.

The values are long and unusual on purpose: a scan must never match by accident (a date, a
uuid, a word of a message). The SMTP and S3 test servers hard-code their credentials; their
values are repeated here as literals (this module is imported by the session plugin, which should
not pull in boto3), and tests/security/test_secrets.py asserts both sides are equal.
"""
from __future__ import annotations

# MariaDB: a user created by the security tests with this password (the session fixture's own
# test user has a random one).
MARIADB_USER = "sec_reader"
MARIADB_PASSWORD = "mdb-pw-7Qx9vLr2KcW4zTn8"
WRONG_PASSWORD = "wrong-pw-Hq3Ls8Vd1Fy6Rt2Xc9Ke5Bm7"

# SMTP AUTH (aiosmtpd test server; its authenticator checks support.smtp.PASSWORD).
SMTP_PASSWORD = "s3cret-smtp-pass"

# S3 keys of the moto server (moto accepts any key pair; the staging store and the dispatcher
# sign every request with them).
S3_ACCESS_KEY = "AKIAGOREPORTSTEST000"  # not secret (it is in every presigned URL)
S3_SECRET_KEY = "goreports-test-secret-key-not-real"

# Webhook HMAC signing secret and bearer token.
WEBHOOK_SECRET = "whsec-sec-Zr4Jm7Pq2Xv9Bn5"
WEBHOOK_TOKEN = "hook-bearer-Tk6Wd3Ys8Fa1Lg"

# JWT signing key (HS256) of the jwt validator stage and of the API server (JWT_SECRET_KEY).
JWT_KEY = "jwt-key-Np5Rc2Vh9Qs7Ue4Kx1Mb8Gt3Wz6Jd0Lf"

ALL: dict[str, str] = {
    "MARIADB_PASSWORD": MARIADB_PASSWORD,
    "WRONG_PASSWORD": WRONG_PASSWORD,
    "SMTP_PASSWORD": SMTP_PASSWORD,
    "S3_SECRET_KEY": S3_SECRET_KEY,
    "WEBHOOK_SECRET": WEBHOOK_SECRET,
    "WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    "JWT_KEY": JWT_KEY,
}


def found_in(text: str | bytes) -> list[str]:
    """Names of the secrets whose value occurs in `text`."""
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    return [name for name, value in ALL.items() if value.encode() in data]
