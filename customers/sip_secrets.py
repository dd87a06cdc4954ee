"""Generated SIP logins and passwords, and the digest credential Asterisk checks."""

from __future__ import annotations

import hashlib
import secrets
import string

LOGIN_DIGITS = 7  # the operator's terms number SIP accounts with 7 digits
PASSWORD_LENGTH = 20
# Letters and digits only: every phone's web form and provisioning file takes them, and
# 20 of 62 symbols is about 119 bits.
_ALPHABET = string.ascii_letters + string.digits


def new_login() -> str:
    """A random 7-digit login that never starts with 0 (phones strip leading zeros)."""
    low = 10 ** (LOGIN_DIGITS - 1)
    return str(low + secrets.randbelow(9 * low))


def new_password() -> str:
    while True:
        password = "".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_LENGTH))
        # At least one of each kind, so no phone's password policy refuses it.
        if (
            any(c.islower() for c in password)
            and any(c.isupper() for c in password)
            and any(c.isdigit() for c in password)
        ):
            return password


def digest_ha1(login: str, realm: str, password: str) -> str:
    """MD5(login:realm:password): SIP digest (RFC 2617) needs exactly this, not a slow hash;
    Asterisk's `md5_cred`. It is password-equivalent for this realm: keep it private."""
    return hashlib.md5(f"{login}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()
