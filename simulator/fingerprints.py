"""The fingerprint the platform must store for a scanned token: HMAC-SHA-256 of the token's bytes under the
stack's credential secret (docs/domain.md, "Reader payloads"). Computed here with hmac, never through the
platform's own credential code, so that a mistake there shows in the reconciliation."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class CredentialKey:
    key_id: str
    secret: bytes

    def fingerprint(self, token: bytes) -> str:
        return hmac.new(self.secret, token, hashlib.sha256).hexdigest()
