"""Credential keys and fingerprints: HMAC-SHA-256 of a token under a secret named by a key id.

A fingerprint lets the same card be followed across readers and days without keeping the card: the secret
never leaves the platform, so a fingerprint cannot be turned back into the token nor computed for a guessed
token by someone without it. The key id travels with every fingerprint, so a rotated secret is a new key id
and old fingerprints stay meaningful (`f2 credentials fingerprint` computes one per known key).

Pure, no I/O. Error messages name the setting that is wrong and never hold a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Final

# Key ids appear in JSON, in the f2.redacted header and inside "id:secret,id:secret": no ':' nor ','.
KEY_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
KEY_ID_RULE: Final = "1 to 32 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"
# A short secret makes fingerprints of short tokens guessable by brute force.
MIN_SECRET_CHARS: Final = 16


class CredentialKeyError(ValueError):
    """A key id or secret setting is unusable; the message names the setting, never the secret."""


@dataclass(frozen=True)
class CredentialKey:
    key_id: str
    secret: bytes = field(repr=False)

    def fingerprint(self, token: bytes) -> str:
        """HMAC-SHA-256 of `token` under this key's secret: 64 lowercase hex digits."""
        return hmac.new(self.secret, token, hashlib.sha256).hexdigest()


def make_key(key_id: str, secret: str, *, id_setting: str, secret_setting: str, show_id: bool = True) -> CredentialKey:
    """A key from its settings' values; CredentialKeyError naming the setting when one is unusable. `show_id`
    False keeps the id out of the message (an id:secret list written the wrong way round holds a secret there)."""
    check_key_id(key_id, id_setting, show=show_id)
    if len(secret) < MIN_SECRET_CHARS:
        raise CredentialKeyError(
            f"{secret_setting} is {len(secret)} characters long; use at least {MIN_SECRET_CHARS} random "
            "characters (for example: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return CredentialKey(key_id, secret.encode("utf-8"))


def check_key_id(key_id: str, setting: str, *, show: bool = True) -> None:
    if not KEY_ID_RE.fullmatch(key_id):
        shown = f" {key_id!r}" if show else ""
        raise CredentialKeyError(f"{setting}{shown} is not a valid key id: {KEY_ID_RULE}")


def parse_previous_keys(text: str, setting: str) -> list[CredentialKey]:
    """Keys from "id:secret,id:secret" (an empty text: none). Secrets may hold ':' but not ','."""
    keys: list[CredentialKey] = []
    for n, item in enumerate(text.split(","), 1):
        item = item.strip()
        if not item:
            if text.strip():
                raise CredentialKeyError(f"{setting}: entry {n} is empty; expected id:secret,id:secret")
            continue
        key_id, colon, secret = item.partition(":")
        if not colon:
            raise CredentialKeyError(f"{setting}: entry {n} has no ':'; expected id:secret,id:secret")
        where = f"{setting} entry {n}"
        key = make_key(
            key_id.strip(), secret, id_setting=f"{where}'s id", secret_setting=f"{where}'s secret", show_id=False
        )
        if any(k.key_id == key.key_id for k in keys):
            raise CredentialKeyError(f"{setting}: entry {n} repeats the key id of an earlier entry")
        keys.append(key)
    return keys
