"""Reader credentials are never forwarded in clear: the bridge rewrites every reader payload into a keyed
fingerprint of its token (or the light-indicator response's bytes in hex) before it reaches Kafka.

`bytes_literal` reads the token out of the payload's `data` (the text of a Python bytes literal), `keys`
holds the HMAC-SHA-256 keys and fingerprints, `redaction` builds the canonical payload. Pure, no I/O.
"""

from streaming.credentials.keys import CredentialKey, CredentialKeyError
from streaming.credentials.redaction import OUTCOMES, Redacted, redact_credentials

__all__ = ["OUTCOMES", "CredentialKey", "CredentialKeyError", "Redacted", "redact_credentials"]
