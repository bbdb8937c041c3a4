"""What the enrollment endpoint accepts and how it answers: request parsing, the claim check, refusals.

Pure: no network, no database, no files. `certs/enrollment.py` wires it to HTTPS (FastAPI on uvicorn), the
registry and the CA.

Request (POST /v1/enroll, Content-Type: application/json), exactly one of `csr` / `generate_key`:

    {"mac": "aabbccddee01", "claiming_code": "...", "csr": "-----BEGIN CERTIFICATE REQUEST-----..."}
    {"mac": "aabbccddee01", "claiming_code": "...", "generate_key": true}

Every refusal is a JSON object {"error": <code>, "message": <text for a human>}. An unknown MAC and a
wrong claiming code get the same 403 answer, so the endpoint does not tell which MACs exist; the
service's log says which it was.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from cryptography import x509
from cryptography.x509.oid import NameOID

from certs.authority import MAX_CSR_BYTES, validate_mac
from certs.errors import InvalidMacError

ENROLL_PATH: Final = "/v1/enroll"
HEALTH_PATH: Final = "/healthz"
METRICS_PATH: Final = "/metrics"
# A PEM CSR and a few short fields; anything larger is refused before it is read.
MAX_BODY_BYTES: Final = MAX_CSR_BYTES + 4096
# The request line and headers together. http.server, which served this endpoint before, allowed 64 KiB
# per line; an enrolling controller sends a few hundred bytes.
MAX_HEAD_BYTES: Final = 64 * 1024
MAX_CLAIMING_CODE_CHARS: Final = 256
FIELDS: Final = frozenset({"mac", "claiming_code", "csr", "generate_key"})

CLAIM_REJECTED_MESSAGE: Final = (
    "the MAC and claiming code do not match a controller that may enroll; check both with the "
    "controller's label or the registry"
)


class Refusal(Exception):
    """A request the service answers with an error status.

    `error` is the stable machine-readable code of the JSON answer, `message` the text sent to the
    client, `reason` the finer cause written to the service's log only (never a secret).
    """

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        reason: str,
        *,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.reason = reason
        self.retry_after = retry_after

    def body(self) -> dict[str, str]:
        return {"error": self.error, "message": self.message}


def bad_request(message: str, reason: str) -> Refusal:
    return Refusal(400, "bad-request", message, reason)


def claim_rejected(reason: str) -> Refusal:
    """403 for an unknown MAC, a wrong code, or a controller without a claiming code: one answer for all."""
    return Refusal(403, "claim-rejected", CLAIM_REJECTED_MESSAGE, reason)


def already_enrolled(mac: str) -> Refusal:
    return Refusal(
        409,
        "already-enrolled",
        f"controller {mac} has already enrolled and its claiming code is used up; an operator must run "
        f"`f2 certs allow-reenroll {mac}` before it can enroll again",
        "already-enrolled",
    )


def rate_limited(scope: str, retry_after: str) -> Refusal:
    who = "this address" if scope == "client" else "all clients together"
    return Refusal(
        429,
        "rate-limited",
        f"too many enrollment requests from {who}; retry in {retry_after} s",
        f"rate-limited-{scope}",
        retry_after=retry_after,
    )


@dataclass(frozen=True)
class EnrollRequest:
    """A well-formed enrollment request. Neither the code nor the CSR appear in its repr."""

    mac: str
    claiming_code: str = field(repr=False)
    csr_pem: bytes | None = field(default=None, repr=False)  # None: the service generates the key

    @property
    def generate_key(self) -> bool:
        return self.csr_pem is None

    @property
    def key_source(self) -> str:
        return "generated" if self.csr_pem is None else "csr"


@dataclass(frozen=True)
class EnrollmentState:
    """The enrollment ledger's row of one controller ("VtDevice".f2_enrollments)."""

    mac: str
    serial: str
    enrolled_at: datetime
    enrollments: int
    reenroll_allowed: bool


def body_length(content_length: str | None, transfer_encoding: str | None) -> int:
    """The request body's length from its headers, checked before any of the body is read.

    A length is required (no chunked bodies), so the size limit is decided before reading a byte.
    """
    if transfer_encoding is not None:
        raise bad_request("chunked transfer encoding is not supported; send Content-Length", "transfer-encoding")
    if content_length is None:
        raise Refusal(411, "length-required", "send a Content-Length header", "no-content-length")
    try:
        length = int(content_length.strip())
    except ValueError as exc:
        raise bad_request("Content-Length is not a number", "bad-content-length") from exc
    if length < 0:
        raise bad_request("Content-Length is negative", "bad-content-length")
    if length > MAX_BODY_BYTES:
        raise Refusal(413, "payload-too-large", f"the request body exceeds {MAX_BODY_BYTES} bytes", "body-too-large")
    return length


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise bad_request(f"field {key[:40]!r} appears twice in the JSON object", "duplicate-field")
        result[key] = value
    return result


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json"


def parse_enroll_request(body: bytes, content_type: str | None) -> EnrollRequest:
    """Check an enrollment request body; raise a 400 Refusal that says what is wrong.

    Messages never repeat the claiming code; log reasons never carry request data.
    """
    if not _is_json(content_type):
        raise bad_request("send the request as JSON with Content-Type: application/json", "content-type")
    if len(body) > MAX_BODY_BYTES:
        raise Refusal(413, "payload-too-large", f"the request body exceeds {MAX_BODY_BYTES} bytes", "body-too-large")
    try:
        text = body.decode("utf-8")
        raw = json.loads(text, object_pairs_hook=_no_duplicates)
    except Refusal:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad_request("the request body is not valid UTF-8 JSON", "invalid-json") from exc
    if not isinstance(raw, dict):
        raise bad_request(
            'the request body must be a JSON object like {"mac": ..., "claiming_code": ..., "csr": ...}',
            "not-an-object",
        )
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:3])
        raise bad_request(
            f"unknown field(s) {shown}; expected mac, claiming_code and csr or generate_key", "unknown-field"
        )
    mac = _parse_mac(raw.get("mac"))
    code = raw.get("claiming_code")
    if code is None:
        raise bad_request("claiming_code is missing", "missing-claiming-code")
    if not isinstance(code, str) or not code or len(code) > MAX_CLAIMING_CODE_CHARS:
        raise bad_request(
            f"claiming_code must be a non-empty string of at most {MAX_CLAIMING_CODE_CHARS} characters",
            "invalid-claiming-code",
        )
    csr = raw.get("csr")
    generate = raw.get("generate_key", False)
    if not isinstance(generate, bool):
        raise bad_request("generate_key must be true or false", "invalid-generate-key")
    if csr is not None and generate:
        raise bad_request("send either csr or generate_key: true, not both", "csr-and-generate-key")
    if csr is None:
        if not generate:
            raise bad_request(
                "send a PEM CSR in csr (CN = the MAC), or generate_key: true to have a key generated",
                "missing-csr",
            )
        return EnrollRequest(mac=mac, claiming_code=code)
    if not isinstance(csr, str):
        raise bad_request("csr must be the PEM text of a certificate request", "invalid-csr")
    csr_pem = csr.encode("utf-8")
    check_csr(csr_pem, mac)
    return EnrollRequest(mac=mac, claiming_code=code, csr_pem=csr_pem)


def _parse_mac(value: object) -> str:
    if value is None:
        raise bad_request("mac is missing", "missing-mac")
    if not isinstance(value, str) or len(value) > 32:
        raise bad_request("mac must be the controller's MAC: 12 lowercase hex digits without separators", "invalid-mac")
    try:
        return validate_mac(value)
    except InvalidMacError as exc:
        raise bad_request(str(exc), "invalid-mac") from exc


def check_csr(csr_pem: bytes, mac: str) -> None:
    """The CSR parses, is signed by its own key and names exactly `mac`; the CA checks the key type."""
    if len(csr_pem) > MAX_CSR_BYTES:
        raise bad_request(f"csr exceeds {MAX_CSR_BYTES} bytes", "csr-too-large")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise bad_request(
            "csr is not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----)", "invalid-csr"
        ) from exc
    try:
        signed = csr.is_signature_valid
    except Exception as exc:  # an unsupported key or signature algorithm
        raise bad_request("csr uses an unsupported key or signature algorithm; use EC P-256", "invalid-csr") from exc
    if not signed:
        raise bad_request("csr is not signed by the key it contains; generate it again", "csr-signature")
    names = [attribute.value for attribute in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [mac]:
        raise bad_request(f"the CSR's subject must be exactly CN={mac} (the controller's own MAC)", "csr-common-name")


def _digest(code: str) -> bytes:
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).digest()


def codes_match(presented: str, expected: str | None) -> bool:
    """Constant-time comparison of claiming codes.

    Both sides are hashed first so the comparison takes the same time whatever their lengths; a
    controller without a code (None or empty) matches nothing, yet costs the same comparison.
    """
    same = hmac.compare_digest(_digest(presented), _digest(expected or ""))
    return same and bool(expected)


def check_claim(presented: str, known: bool, expected: str | None) -> None:
    """Raise the 403 Refusal unless `known` (a controller with this MAC exists) and the codes match."""
    matched = codes_match(presented, expected)  # always compared, so the time does not tell `known`
    if not known:
        raise claim_rejected("unknown-mac")
    if not expected:
        raise claim_rejected("no-claiming-code")
    if not matched:
        raise claim_rejected("wrong-code")


def check_enrollable(mac: str, state: EnrollmentState | None) -> bool:
    """Raise the 409 Refusal when `mac` has enrolled and no re-enrollment is allowed.

    Returns True for an allowed re-enrollment, False for a first one.
    """
    if state is None:
        return False
    if state.reenroll_allowed:
        return True
    raise already_enrolled(mac)


__all__ = [
    "ENROLL_PATH",
    "HEALTH_PATH",
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "METRICS_PATH",
    "EnrollRequest",
    "EnrollmentState",
    "Refusal",
    "already_enrolled",
    "bad_request",
    "body_length",
    "check_claim",
    "check_csr",
    "check_enrollable",
    "claim_rejected",
    "codes_match",
    "parse_enroll_request",
    "rate_limited",
]
