"""Checks for adopting an existing CA and the certificates it issued before the platform ran (pure: no files).

`f2 certs import-ca` makes another deployment's CA the platform's, so its controllers keep their
certificates: the broker trusts that CA (ca.crt is Mosquitto's `cafile`), the enrollment service issues from
it, and the CRL is signed by it. `f2 certs import-issued` records the certificates it issued, so they can be
listed, revoked and watched for expiry. What is refused here is refused before any file is written.

The CA to adopt is the one that signed the devices' certificates. When it is an intermediate, its chain up
to a self-signed root comes with it: OpenSSL (and so Mosquitto) verifies a client certificate only up to a
self-signed root in its `cafile`, and devices that trust only the root need the intermediate from the broker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.errors import CAImportError, KeyEncryptedError

_PEM_CERT: Final = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
_MAC_RE: Final = re.compile(r"[0-9a-f]{12}")
_ACCEPTED_CURVES: Final = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_MIN_RSA_BITS: Final = 2048
EXPIRY_SOON: Final = timedelta(days=90)
CERT_SUFFIXES: Final = (".pem", ".crt", ".cer")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def load_certificates(pem: bytes, what: str) -> list[x509.Certificate]:
    """Every PEM certificate in `pem`, in file order; CAImportError when there is none or one is broken."""
    blocks = _PEM_CERT.findall(pem)
    if not blocks:
        raise CAImportError(f"{what} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the PEM file")
    certs = []
    for number, block in enumerate(blocks, start=1):
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            raise CAImportError(f"certificate {number} of {what} cannot be read ({exc})") from exc
    return certs


def load_private_key(pem: bytes, password: bytes | None, what: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except TypeError as exc:
        if password is None:
            raise KeyEncryptedError(f"{what} is encrypted: give its passphrase") from exc
        raise CAImportError(f"{what} is not encrypted: give no passphrase") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        hint = " (wrong passphrase?)" if password is not None else ""
        raise CAImportError(f"{what} is not a readable PEM private key{hint}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CAImportError(f"{what} holds a {type(key).__name__}; the platform signs with EC or RSA CA keys only")
    if isinstance(key, ec.EllipticCurvePrivateKey) and not isinstance(key.curve, _ACCEPTED_CURVES):
        raise CAImportError(f"{what} uses curve {key.curve.name}; OpenSSL clients expect P-256, P-384 or P-521")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < _MIN_RSA_BITS:
        raise CAImportError(f"{what} is a {key.key_size}-bit RSA key; at least {_MIN_RSA_BITS} bits are needed")
    return key


def _spki(public_key: object) -> bytes:
    assert isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def name_of(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


@dataclass(frozen=True)
class AdoptableCA:
    """A CA that passed every check: its certificate, key and chain (root last), and what to know about it."""

    cert: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...]
    notes: tuple[str, ...]

    @property
    def bundle(self) -> list[x509.Certificate]:
        """ca.crt: the CA first (what the platform signs with), then its chain up to the root."""
        return [self.cert, *self.chain]


def check_adoptable(
    certs: list[x509.Certificate], key: PrivateKey, extra_chain: Iterable[x509.Certificate], now: datetime
) -> AdoptableCA:
    """The first of `certs` is the CA to adopt, the others (and `extra_chain`) its chain, in any order.

    Every problem found is reported at once, in one CAImportError.
    """
    ca, pool = certs[0], [*certs[1:], *extra_chain]
    problems: list[str] = []
    notes: list[str] = []
    if _spki(key.public_key()) != _spki(ca.public_key()):
        problems.append(f"the key is not the key of the certificate {name_of(ca)}: give the CA's own key")
    problems += _ca_problems(ca, "the certificate", now, notes)
    chain, chain_problems = _chain_of(ca, pool, now, notes)
    problems += chain_problems
    if problems:
        raise CAImportError(
            f"cannot adopt {name_of(ca)} as the platform CA: " + "; ".join(problems) + ". Nothing was changed."
        )
    left = ca.not_valid_after_utc - now
    if left < EXPIRY_SOON:
        notes.append(
            f"the CA expires on {ca.not_valid_after_utc.isoformat()} ({left.days} days): certificates it issues "
            "end then too; plan its replacement"
        )
    return AdoptableCA(ca, key, tuple(chain), tuple(notes))


def _ca_problems(cert: x509.Certificate, what: str, now: datetime, notes: list[str]) -> list[str]:
    problems = []
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        problems.append(
            f"{what} {name_of(cert)} is not a CA certificate (basicConstraints CA:TRUE is missing): a device or "
            "server certificate cannot sign others"
        )
    try:
        usage: x509.KeyUsage | None = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
        notes.append(f"{name_of(cert)} has no keyUsage extension: OpenSSL allows it every use, signing included")
    if usage is not None:
        missing = [name for name, ok in (("keyCertSign", usage.key_cert_sign), ("cRLSign", usage.crl_sign)) if not ok]
        if missing:
            problems.append(
                f"{what} {name_of(cert)} may not be used for {' and '.join(missing)} (keyUsage): the platform signs "
                "certificates and the revocation list with it, and OpenSSL refuses what a CA signed without that usage"
            )
    if now < cert.not_valid_before_utc:
        problems.append(f"{what} {name_of(cert)} is not valid before {cert.not_valid_before_utc.isoformat()}")
    if now >= cert.not_valid_after_utc:
        problems.append(
            f"{what} {name_of(cert)} expired on {cert.not_valid_after_utc.isoformat()}: every certificate it "
            "issued is refused already; there is nothing left to keep"
        )
    return problems


def _chain_of(
    ca: x509.Certificate, pool: list[x509.Certificate], now: datetime, notes: list[str]
) -> tuple[list[x509.Certificate], list[str]]:
    """The issuers of `ca` up to a self-signed root, taken from `pool`; certificates of `pool` that are not
    on the path are reported (a wrong file given)."""
    chain: list[x509.Certificate] = []
    current = ca
    problems: list[str] = []
    while not is_self_signed(current):
        issuer = next((c for c in pool if c not in chain and issued_by(current, c)), None)
        if issuer is None:
            problems.append(
                f"{name_of(current)} is issued by {current.issuer.rfc4514_string()}, which is not given: add the "
                "chain (each issuing CA up to the self-signed root) after the CA in --cert or with --chain; the "
                "broker verifies devices only up to a root it holds"
            )
            break
        problems += _ca_problems(issuer, "the chain's certificate", now, notes)
        chain.append(issuer)
        current = issuer
        if len(chain) > 8:
            problems.append("the chain is longer than 8 certificates")
            break
    unused = [c for c in pool if c not in chain]
    if unused and not problems:
        problems.append(
            "these certificates are not on the CA's path to its root: "
            + ", ".join(name_of(c) for c in unused)
            + "; give only the CA and its issuers"
        )
    return chain, problems


def revocations_of(crl_pem: bytes, ca: x509.Certificate, now: datetime) -> list[tuple[str, datetime]]:
    """(serial hex, revocation time) of a CRL the CA signed: what stays revoked after the adoption."""
    try:
        crl = x509.load_pem_x509_crl(crl_pem)
    except ValueError:
        try:
            crl = x509.load_der_x509_crl(crl_pem)
        except ValueError as exc:
            raise CAImportError(f"the CRL cannot be read as PEM or DER ({exc})") from exc
    if crl.issuer != ca.subject or not crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
        raise CAImportError(
            f"the CRL is issued by {crl.issuer.rfc4514_string()} and not signed by the CA {name_of(ca)}: give the "
            "CRL of the CA being adopted. Nothing was changed."
        )
    return [(format(r.serial_number, "x"), r.revocation_date_utc) for r in crl]


@dataclass(frozen=True)
class IssuedFinding:
    """One certificate offered to import-issued: recorded as a device's, or refused with the reason."""

    source: str
    cert: x509.Certificate | None
    mac: str | None
    refusal: str | None


def classify_issued(cert: x509.Certificate, ca: x509.Certificate, source: str) -> IssuedFinding:
    """A certificate the adopted CA issued to a controller (CN = its MAC), or why it is not one."""
    subject = name_of(cert)
    if cert == ca:
        return IssuedFinding(source, cert, None, f"{subject} is the adopted CA itself, not a device's certificate")
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return IssuedFinding(source, cert, None, f"{subject} is a CA certificate, not a device's")
    except x509.ExtensionNotFound:
        pass
    if not issued_by(cert, ca):
        return IssuedFinding(
            source,
            cert,
            None,
            f"{subject} is not issued by the adopted CA {name_of(ca)} (issuer {cert.issuer.rfc4514_string()})",
        )
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if len(names) != 1 or not _MAC_RE.fullmatch(names[0]):
        server = _has_usage(cert, ExtendedKeyUsageOID.SERVER_AUTH) and not _has_usage(
            cert, ExtendedKeyUsageOID.CLIENT_AUTH
        )
        if server:
            reason = "a server certificate (the platform's broker has its own: `f2 certs server`)"
        else:
            reason = (
                f"its common name {names!r} is not a controller MAC (12 lowercase hex digits): the broker takes the "
                "CN as the MQTT username and lets it publish only under tele/f2-<CN>/..., so this certificate could "
                "publish nowhere; let the device enroll, or issue it one with `f2 certs issue <mac>`"
            )
        return IssuedFinding(source, cert, None, f"{subject} is {reason}")
    if not _has_usage(cert, ExtendedKeyUsageOID.CLIENT_AUTH, default=True):
        return IssuedFinding(
            source, cert, None, f"{subject} may not be used as a TLS client (extendedKeyUsage without clientAuth)"
        )
    return IssuedFinding(source, cert, names[0], None)


def _has_usage(cert: x509.Certificate, oid: x509.ObjectIdentifier, default: bool = False) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return default
    return oid in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages


def certificate_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Each file given, and the certificate files (.pem, .crt, .cer) of each folder given, sorted."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CERT_SUFFIXES)
        else:
            yield path


def read_issued(paths: Iterable[Path], ca: x509.Certificate) -> list[IssuedFinding]:
    """Every certificate in the files and folders given, classified; unreadable files are findings too."""
    findings = []
    for path in certificate_files(paths):
        try:
            data = path.read_bytes()
        except OSError as exc:
            findings.append(IssuedFinding(str(path), None, None, f"cannot be read: {exc.strerror or exc}"))
            continue
        blocks = _PEM_CERT.findall(data)
        if not blocks:
            try:
                blocks = [x509.load_der_x509_certificate(data).public_bytes(serialization.Encoding.PEM)]
            except ValueError:
                findings.append(IssuedFinding(str(path), None, None, "holds no certificate (PEM or DER)"))
                continue
        for number, block in enumerate(blocks, start=1):
            source = str(path) if len(blocks) == 1 else f"{path} (certificate {number})"
            try:
                cert = x509.load_pem_x509_certificate(block)
            except ValueError as exc:
                findings.append(IssuedFinding(source, None, None, f"cannot be read ({exc})"))
                continue
            findings.append(classify_issued(cert, ca, source))
    return findings


__all__ = [
    "AdoptableCA",
    "IssuedFinding",
    "check_adoptable",
    "classify_issued",
    "is_self_signed",
    "load_certificates",
    "load_private_key",
    "read_issued",
    "revocations_of",
]
