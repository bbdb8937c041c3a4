"""A controller's side of enrollment: make a key and CSR locally, send the CSR with the claiming code over
verified HTTPS, check what comes back, save it.

    crt, key = enroll("https://enroll.example:18443", "aabbccddee01", code, Path("ca.crt"), Path("certs"))

The private key never leaves the device. The server must present a certificate that chains to `ca_cert`
and names the URL's host. `url` is the service's base URL (`/v1/enroll` is added) or the full endpoint.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from certs import store
from certs.authority import generate_csr, validate_mac
from certs.enrollment_rules import ENROLL_PATH
from certs.errors import CertsError

DEFAULT_TIMEOUT_S: Final = 15.0
# How long `enroll` keeps retrying when the service answers 429, following its Retry-After.
DEFAULT_RATE_LIMIT_WAIT_S: Final = 60.0
_MAX_RESPONSE_BYTES: Final = 256 * 1024


class EnrollmentError(CertsError):
    """Enrollment failed: the service could not be reached or verified, or its answer was unusable."""


class EnrollmentRefusedError(EnrollmentError):
    """The service answered with an error status; `message` is the service's own explanation."""

    def __init__(self, status: int, error: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"enrollment refused ({status} {error}): {message}")
        self.status = status
        self.error = error
        self.server_message = message
        self.retry_after = retry_after


class InvalidEnrollmentRequestError(EnrollmentRefusedError):
    """400/411/413: the service could not accept the request as sent."""


class ClaimRejectedError(EnrollmentRefusedError):
    """403: unknown MAC or wrong claiming code (the service does not say which)."""


class AlreadyEnrolledError(EnrollmentRefusedError):
    """409: this controller has enrolled; an operator must run `f2 certs allow-reenroll <mac>`."""


class RateLimitedError(EnrollmentRefusedError):
    """429: too many requests; `retry_after` says when to try again."""


class EnrollmentUnavailableError(EnrollmentRefusedError):
    """5xx: the service or its registry failed; retry later."""


_BY_STATUS: Final[dict[int, type[EnrollmentRefusedError]]] = {
    400: InvalidEnrollmentRequestError,
    411: InvalidEnrollmentRequestError,
    413: InvalidEnrollmentRequestError,
    403: ClaimRejectedError,
    409: AlreadyEnrolledError,
    429: RateLimitedError,
}


def endpoint(url: str) -> tuple[str, int, str]:
    """(host, port, path) of an https URL; a URL without a path gets /v1/enroll."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise EnrollmentError(
            f"enrollment URL {url!r} must be https://...: the claiming code is a secret, sent over TLS only"
        )
    if not parts.hostname:
        raise EnrollmentError(f"enrollment URL {url!r} has no host")
    if parts.username or parts.password:
        raise EnrollmentError(f"enrollment URL {url!r} must not carry credentials")
    try:
        port = parts.port or 443
    except ValueError as exc:
        raise EnrollmentError(f"enrollment URL {url!r} has an invalid port") from exc
    path = parts.path if parts.path not in ("", "/") else ENROLL_PATH
    if parts.query:
        path = f"{path}?{parts.query}"
    return parts.hostname, port, path


def client_tls_context(ca_cert: Path) -> ssl.SSLContext:
    """Verifies the server against `ca_cert` only (not the system store), hostname included, TLS 1.2+."""
    try:
        context = ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as exc:
        raise EnrollmentError(f"cannot load the CA certificate {ca_cert}: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def post_json(
    url: str, body: dict[str, Any], ca_cert: Path, *, timeout: float = DEFAULT_TIMEOUT_S
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST `body` as JSON over verified TLS; returns (status, JSON answer, headers)."""
    host, port, path = endpoint(url)
    context = client_tls_context(ca_cert)
    data = json.dumps(body).encode()
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
    try:
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read(_MAX_RESPONSE_BYTES + 1)
        headers = {name.lower(): value for name, value in response.getheaders()}
        status = response.status
    except ssl.SSLCertVerificationError as exc:
        raise EnrollmentError(
            f"the enrollment service at {host}:{port} is not trusted by {ca_cert} ({exc.verify_message}); "
            f"check the URL and that this is the platform's CA certificate"
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise EnrollmentError(f"cannot reach the enrollment service at {host}:{port}: {exc}") from exc
    finally:
        conn.close()
    if len(raw) > _MAX_RESPONSE_BYTES:
        raise EnrollmentError(f"the enrollment service sent more than {_MAX_RESPONSE_BYTES} bytes")
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise EnrollmentError(f"the enrollment service answered {status} without a JSON object")
    return status, answer, headers


def _refusal(status: int, answer: dict[str, Any], headers: dict[str, str]) -> EnrollmentRefusedError:
    error = str(answer.get("error") or "error")
    message = str(answer.get("message") or "no explanation given")
    retry_after: float | None = None
    with contextlib.suppress(KeyError, ValueError):
        retry_after = float(headers["retry-after"])
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = EnrollmentUnavailableError if status >= 500 else EnrollmentRefusedError
    return cls(status, error, message, retry_after)


def _check_certificate(cert_pem: object, mac: str, key_pem: bytes, ca_cert: Path) -> x509.Certificate:
    if not isinstance(cert_pem, str):
        raise EnrollmentError("the enrollment service answered 200 without a certificate")
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
        # The CA file may hold an adopted intermediate CA followed by its chain: any of them may be the issuer.
        authorities = x509.load_pem_x509_certificates(ca_cert.read_bytes())
    except (ValueError, UnicodeEncodeError, OSError) as exc:
        raise EnrollmentError(f"the certificate received cannot be read: {exc}") from exc
    names = [attribute.value for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [mac]:
        raise EnrollmentError(f"the certificate received names {names!r}, not {mac}")
    if not any(_issued_by(cert, ca) for ca in authorities):
        raise EnrollmentError(f"the certificate received was not issued by the CA in {ca_cert}")
    key = serialization.load_pem_private_key(key_pem, password=None)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise EnrollmentError("the certificate received is not for the key this device generated")
    return cert


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def enroll(
    url: str,
    mac: str,
    claiming_code: str,
    ca_cert: Path,
    out_dir: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    rate_limit_wait: float = DEFAULT_RATE_LIMIT_WAIT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Path, Path]:
    """Enroll controller `mac`; writes `<mac>.crt` (0644) and `<mac>.key` (0600) to `out_dir`.

    Returns (certificate path, key path). Raises EnrollmentRefusedError (a subclass per status: see
    above) with the service's message when refused, EnrollmentError when the service cannot be reached,
    is not trusted, or sends something unusable. A 429 is retried after its Retry-After while the total
    wait stays within `rate_limit_wait` seconds (0: raise RateLimitedError at once).
    """
    validate_mac(mac)
    ca_cert, out_dir = Path(ca_cert), Path(out_dir)
    if not claiming_code:
        raise EnrollmentError(f"no claiming code for {mac}: it is on the controller's label and in the registry")
    key_pem, csr_pem = generate_csr(mac)
    request = {"mac": mac, "claiming_code": claiming_code, "csr": csr_pem.decode("ascii")}
    waited = 0.0
    while True:
        status, answer, headers = post_json(url, request, ca_cert, timeout=timeout)
        if status == 200:
            break
        refusal = _refusal(status, answer, headers)
        delay = refusal.retry_after if refusal.retry_after is not None else 1.0
        if not isinstance(refusal, RateLimitedError) or waited + delay > rate_limit_wait:
            raise refusal
        sleep(delay)
        waited += delay
    _check_certificate(answer.get("certificate"), mac, key_pem, ca_cert)
    if not out_dir.is_dir():
        out_dir.mkdir(parents=True, mode=store.PRIVATE_DIR_MODE)
    key_path, cert_path = out_dir / f"{mac}.key", out_dir / f"{mac}.crt"
    # The key first: a certificate on disk always has its key next to it.
    store.atomic_write(key_path, key_pem, store.PRIVATE_MODE)
    store.atomic_write(cert_path, str(answer["certificate"]).encode("ascii"), store.PUBLIC_MODE)
    return cert_path, key_path


__all__ = [
    "AlreadyEnrolledError",
    "ClaimRejectedError",
    "EnrollmentError",
    "EnrollmentRefusedError",
    "EnrollmentUnavailableError",
    "InvalidEnrollmentRequestError",
    "RateLimitedError",
    "enroll",
    "post_json",
]
