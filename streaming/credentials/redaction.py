"""A reader's MQTT payload rewritten so that no credential is left in it: what the bridge writes to f2.raw.

Reader payloads (docs/domain.md, "Reader payloads") are `{"timestamp": "...", "data": "b'...'"}`, `data` being
the text of a Python bytes literal: a QR/NFC token, or the reader's light-indicator response. The rewrite is a
canonical JSON object (docs/contracts.md, "Raw records"):

- a token: `{"timestamp", "credential": {"fingerprint", "key_id", "length"}}`;
- an indicator response (STX 0x02 .. ETX 0x03, at most 32 bytes, no run of 4 printable ASCII characters
  inside; not a credential):
  `{"timestamp", "indicator": "02 02 01 00 00 00 03 03"}`;
- anything else (not JSON, not an object, no `data`, `data` not a bytes literal, too long):
  `{"timestamp", "unparsed": "<one-line reason>", "credential": <fingerprint of the whole raw payload>}`.

`timestamp` is kept as received when it is a string, and left out otherwise (the processor then explains it).
Every other field is dropped: any of them could hold the token. Pure, no I/O; reasons never quote the payload.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

import orjson

from streaming.credentials.bytes_literal import BytesLiteralError, parse_bytes_literal
from streaming.credentials.keys import CredentialKey

OUTCOMES: Final[tuple[str, ...]] = ("token", "indicator", "unparsed")
# docs/domain.md: a reader's token is at most 1023 bytes.
MAX_TOKEN_BYTES: Final = 1023
STX: Final = 0x02
ETX: Final = 0x03
MAX_INDICATOR_BYTES: Final = 32
# Text inside an STX .. ETX frame: four or more printable ASCII characters in a row.
_PRINTABLE_RUN: Final = re.compile(rb"[\x20-\x7e]{4,}")
# The longest `data` text a token of MAX_TOKEN_BYTES can have: b'' around a \xHH escape per byte.
MAX_LITERAL_CHARS: Final = 3 + 4 * MAX_TOKEN_BYTES
# Reader payloads are a few hundred bytes; above this the bridge does not parse and fingerprints the whole.
MAX_PAYLOAD_BYTES: Final = 64 * 1024


class Redacted(NamedTuple):
    value: bytes  # the canonical JSON object, UTF-8
    outcome: str  # one of OUTCOMES


class _Unparsed(Exception):
    """Why a payload is not a reader payload; the text never quotes the payload."""


def redact_credentials(raw: bytes, key: CredentialKey) -> Redacted:
    """The canonical, credential-free form of a reader's payload (see the module's docstring)."""
    head: dict[str, object] = {}
    try:
        obj = _load_object(raw)
        timestamp = obj.get("timestamp")
        if isinstance(timestamp, str):
            head["timestamp"] = timestamp
        token = _token_of(obj)
    except _Unparsed as exc:
        head["unparsed"] = str(exc)
        head["credential"] = credential(key, raw)
        return Redacted(orjson.dumps(head), "unparsed")
    if is_indicator(token):
        head["indicator"] = indicator_hex(token)
        return Redacted(orjson.dumps(head), "indicator")
    head["credential"] = credential(key, token)
    return Redacted(orjson.dumps(head), "token")


def credential(key: CredentialKey, token: bytes) -> dict[str, object]:
    return {"fingerprint": key.fingerprint(token), "key_id": key.key_id, "length": len(token)}


def is_indicator(token: bytes) -> bool:
    """A light-indicator response: from STX to ETX, at most MAX_INDICATOR_BYTES bytes, binary inside.

    Serial card readers commonly wrap a card number in STX .. ETX as text: a run of printable ASCII inside the
    frame makes it a credential (fingerprinted), since keeping a card number in clear costs more than
    fingerprinting an odd indicator response.
    """
    return (
        2 <= len(token) <= MAX_INDICATOR_BYTES
        and token[0] == STX
        and token[-1] == ETX
        and _PRINTABLE_RUN.search(token, 1, len(token) - 1) is None
    )


def indicator_hex(token: bytes) -> str:
    """Upper-case hex pairs separated by single spaces: "02 02 01 00 00 00 03 03"."""
    return token.hex(" ").upper()


def _load_object(raw: bytes) -> dict[str, object]:
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise _Unparsed(f"payload has {len(raw)} bytes; a reader payload has at most {MAX_PAYLOAD_BYTES}")
    try:
        # orjson: strict JSON in UTF-8 (no NaN, no lone surrogates), so whatever it gives can be written back.
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Unparsed(f"payload is not valid JSON in UTF-8 (error at character {exc.pos})") from None
    if not isinstance(obj, dict):
        raise _Unparsed(f"payload is a JSON {_json_type(obj)}; expected an object with 'timestamp' and 'data'")
    return obj


def _token_of(obj: dict[str, object]) -> bytes:
    if "data" not in obj:
        raise _Unparsed("payload has no 'data' field; expected the token as the text of a Python bytes literal")
    data = obj["data"]
    if not isinstance(data, str):
        raise _Unparsed(f"field 'data' is a JSON {_json_type(data)}; expected the text of a Python bytes literal")
    try:
        token = parse_bytes_literal(data, MAX_LITERAL_CHARS)
    except BytesLiteralError as exc:
        raise _Unparsed(f"field 'data' {exc}") from None
    if len(token) > MAX_TOKEN_BYTES:
        raise _Unparsed(f"the token in 'data' has {len(token)} bytes; at most {MAX_TOKEN_BYTES}")
    return token


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
