"""The platform's CA: client certificates of controllers, the broker's server certificate, the CRL.

Layout of the pki dir (`$F2_STATE_DIR/pki` by default):

    ca.key              CA private key, 0600, never leaves this directory
    ca.crt              CA certificate (Mosquitto `cafile`, device trust anchor), 0644; for an adopted
                        intermediate CA (import_ca) followed by its chain up to the root
    crl.pem             revocation list signed by the CA (Mosquitto `crlfile`), 0644, rewritten on
                        init, revoke and refresh_crl; it expires after `crl_days`, and once it has
                        expired OpenSSL refuses every client, so refresh it well before (refresh_crl)
    server.crt          broker certificate with DNS/IP SANs (Mosquitto `certfile`), 0644, followed by the
                        CA's intermediates when it has any
    server.key          broker key (Mosquitto `keyfile`), 0640, group of the broker user
    devices/<mac>.crt   latest certificate of a controller, CN = MAC (`use_identity_as_username`)
    devices/<mac>.key   its key, 0600, only when the CA generated it (absent for CSR enrolment)
    issued/<serial>.pem every certificate ever signed, for audit
    index.json          what was issued, imported and revoked (see store.CertIndex), replaced atomically
    archive/<utc time>/ a CA replaced by init(force=True) or import_ca(replace=True), with everything it
                        had signed
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs import adoption, store
from certs.errors import (
    CAExistsError,
    CAImportError,
    CAMismatchError,
    CANotInitializedError,
    CertsError,
    CSRError,
    InvalidMacError,
    InvalidSubjectError,
    ValidityError,
)
from certs.store import CertIndex, CertKind, IndexEntry

CA_DAYS: Final = 3650
DEVICE_DAYS: Final = 365
SERVER_DAYS: Final = 825
SERVICE_DAYS: Final = 365
CRL_DAYS: Final = 7
EXPIRY_WARNING: Final = timedelta(days=30)
# Controllers' clocks drift; a certificate that starts "now" would be refused by a device a minute behind.
CLOCK_SKEW: Final = timedelta(minutes=5)
DEFAULT_CA_NAME: Final = "F2 Platform CA"
DEFAULT_BROKER_USER: Final = "mosquitto"
MAX_CSR_BYTES: Final = 64 * 1024

_MAC_RE: Final = re.compile(r"[0-9a-f]{12}")
# A service account's name: what the broker's ACL calls it (e.g. f2-bridge); never a MAC, never + # / or %.
_SERVICE_RE: Final = re.compile(r"[a-z][a-z0-9-]{0,62}")
_HOST_LABEL: Final = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME_RE: Final = re.compile(rf"(?:\*\.)?(?:{_HOST_LABEL}\.)*{_HOST_LABEL}")
_ACCEPTED_CURVES: Final = (ec.SECP256R1, ec.SECP384R1)
_MIN_RSA_BITS: Final = 2048
_CRL_WAIT_STEPS: Final = 30
_CRL_WAIT_STEP_SECONDS: Final = 0.05

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def validate_mac(mac: object) -> str:
    """Return `mac` if it is a controller MAC (12 lowercase hex digits), else raise InvalidMacError.

    Nothing is normalised: the MAC becomes the certificate CN, hence the MQTT username and the
    `f2-<mac>` topic segment, and those only ever match the lowercase form.
    """
    if isinstance(mac, str) and _MAC_RE.fullmatch(mac):
        return mac
    hint = ""
    if isinstance(mac, str):
        compact = re.sub(r"[:.\-\s]", "", mac).lower()
        if _MAC_RE.fullmatch(compact):
            hint = f" (did you mean {compact}?)"
    raise InvalidMacError(
        f"invalid controller MAC {mac!r}: expected 12 lowercase hex digits without separators, e.g. aabbccddee01{hint}"
    )


def validate_service_name(name: object) -> str:
    """Return `name` if it can name a service's client certificate, else raise InvalidSubjectError.

    The CN becomes the MQTT username on the device listener (use_identity_as_username), where the ACL gives a
    MAC-shaped name a device's rights: a service is never named like a controller."""
    if isinstance(name, str) and _SERVICE_RE.fullmatch(name) and not _MAC_RE.fullmatch(name):
        return name
    raise InvalidSubjectError(
        f"invalid service name {name!r}: expected the broker account's name, lowercase letters, digits and '-', "
        "starting with a letter, at most 63 characters, and not a controller MAC (e.g. f2-bridge)"
    )


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    """An EC P-256 key: supported by Mosquitto/OpenSSL, paho and the controllers' TLS stack."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def generate_csr(mac: str) -> tuple[bytes, bytes]:
    """Make a key and a CSR with CN = `mac`, as a controller does to enrol. Returns (key_pem, csr_pem)."""
    validate_mac(mac)
    key = generate_private_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, mac)]))
        .sign(key, hashes.SHA256())
    )
    return private_key_pem(key), csr.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class IssuedCert:
    """A certificate just signed, with its key when the CA generated it."""

    common_name: str
    kind: CertKind
    serial: str  # lowercase hex
    not_before: datetime
    not_after: datetime
    cert_pem: bytes
    cert_path: Path
    key_pem: bytes | None  # None when the device sent a CSR and kept its key
    key_path: Path | None

    @property
    def mac(self) -> str | None:
        return self.common_name if self.kind == "device" else None


@dataclass(frozen=True)
class CertInfo:
    """One row of `CertificateAuthority.list_certs()`."""

    serial: str
    common_name: str
    kind: CertKind
    not_before: datetime
    not_after: datetime
    revoked: bool
    revoked_at: datetime | None
    expired: bool
    expires_within_30_days: bool  # still valid now, but not 30 days from now
    superseded: bool  # a later unrevoked certificate exists for the same CN and kind
    origin: str = "issued"  # or "imported": issued by an adopted CA before the platform ran

    @property
    def mac(self) -> str | None:
        return self.common_name if self.kind == "device" else None


@dataclass(frozen=True)
class _LoadedCA:
    key: PrivateKey
    cert: x509.Certificate

    @property
    def key_identifier(self) -> x509.SubjectKeyIdentifier:
        # An adopted CA's own identifier: OpenSSL finds a certificate's issuer by matching its AKI to it.
        try:
            return self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        except x509.ExtensionNotFound:
            return x509.SubjectKeyIdentifier.from_public_key(self.cert.public_key())


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _serial_hex(serial: int) -> str:
    return format(serial, "x")


def _check_days(days: int, what: str) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValidityError(f"{what} must be a whole number of days >= 1, got {days!r}")


def _check_aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidityError(f"{name}={value!r} has no timezone; pass an aware datetime, e.g. in UTC")
    return value.astimezone(UTC)


class CertificateAuthority:
    """The CA kept in one pki dir. Every change happens under an exclusive lock on `<pki dir>/.lock`.

    `clock` returns the current aware time (tests inject one); `broker_user` is the account Mosquitto
    drops to after starting as root: server.key is given to its group when that account exists
    (None: leave ownership alone, for a broker that runs as the current user).
    """

    def __init__(
        self,
        pki_dir: Path,
        *,
        clock: Callable[[], datetime] = _utc_now,
        crl_days: int = CRL_DAYS,
        broker_user: str | None = DEFAULT_BROKER_USER,
    ) -> None:
        _check_days(crl_days, "crl_days")
        self._dir = Path(pki_dir)
        self._clock = clock
        self._crl_days = crl_days
        self._broker_user = broker_user

    # -- paths ---------------------------------------------------------------------------------

    @property
    def pki_dir(self) -> Path:
        return self._dir

    @property
    def ca_key_path(self) -> Path:
        return self._dir / "ca.key"

    @property
    def ca_cert_path(self) -> Path:
        return self._dir / "ca.crt"

    @property
    def crl_path(self) -> Path:
        return self._dir / "crl.pem"

    @property
    def server_cert_path(self) -> Path:
        return self._dir / "server.crt"

    @property
    def server_key_path(self) -> Path:
        return self._dir / "server.key"

    @property
    def index_path(self) -> Path:
        return self._dir / "index.json"

    @property
    def devices_dir(self) -> Path:
        return self._dir / "devices"

    @property
    def issued_dir(self) -> Path:
        return self._dir / "issued"

    @property
    def services_dir(self) -> Path:
        return self._dir / "services"

    def service_cert_path(self, name: str) -> Path:
        return self.services_dir / f"{validate_service_name(name)}.crt"

    def service_key_path(self, name: str) -> Path:
        return self.services_dir / f"{validate_service_name(name)}.key"

    def device_cert_path(self, mac: str) -> Path:
        return self.devices_dir / f"{validate_mac(mac)}.crt"

    def device_key_path(self, mac: str) -> Path:
        return self.devices_dir / f"{validate_mac(mac)}.key"

    @property
    def is_initialized(self) -> bool:
        return self.ca_key_path.is_file() and self.ca_cert_path.is_file()

    # -- CA ------------------------------------------------------------------------------------

    def init(self, common_name: str = DEFAULT_CA_NAME, days: int = CA_DAYS, *, force: bool = False) -> bool:
        """Create the CA key, its self-signed certificate and a first (empty) CRL.

        Returns True when a CA was created, False when one was already there (it is left untouched;
        only a missing crl.pem is written). With `force=True` an existing CA is moved, with everything
        it signed, to `archive/<utc time>/` and replaced: every certificate issued so far stops
        being trusted.
        """
        _check_days(days, "CA validity")
        if not common_name or len(common_name) > 64:
            raise InvalidSubjectError(f"CA common name {common_name!r} must be 1 to 64 characters; pick a shorter name")
        with store.locked(self._dir):
            have_key, have_cert = self.ca_key_path.exists(), self.ca_cert_path.exists()
            if (have_key or have_cert) and not force:
                if not (have_key and have_cert):
                    present, missing = self.ca_key_path, self.ca_cert_path
                    if not have_key:
                        present, missing = missing, present
                    raise CANotInitializedError(
                        f"{present} exists but {missing} does not: restore the missing file from a backup, "
                        f"or replace the CA with init(force=True) / `certs init --force` (every issued "
                        f"certificate stops being trusted)"
                    )
                ca = self._load_ca()
                if not self.crl_path.exists():
                    self._publish_crl(ca, store.load_index(self.index_path))
                return False
            if have_key or have_cert:
                self._archive()
            now = self._now()
            key = generate_private_key()
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - CLOCK_SKEW)
                .not_valid_after(now + timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=False,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256())
            )
            store.ensure_dir(self._dir, store.DIR_MODE)
            store.atomic_write(self.ca_key_path, private_key_pem(key), store.PRIVATE_MODE)
            store.atomic_write(self.ca_cert_path, cert.public_bytes(serialization.Encoding.PEM), store.PUBLIC_MODE)
            self._publish_crl(_LoadedCA(key, cert), CertIndex())
            return True

    def _archive(self) -> Path:
        archive_root = self._dir / "archive"
        store.ensure_dir(archive_root, store.PRIVATE_DIR_MODE)
        stamp = self._now().strftime("%Y%m%dT%H%M%SZ")
        target = archive_root / stamp
        suffix = 1
        while target.exists():
            suffix += 1
            target = archive_root / f"{stamp}-{suffix}"
        target.mkdir(mode=store.PRIVATE_DIR_MODE)
        for path in (
            self.ca_key_path,
            self.ca_cert_path,
            self.crl_path,
            self.index_path,
            self.server_cert_path,
            self.server_key_path,
            self.devices_dir,
            self.issued_dir,
        ):
            if path.exists():
                shutil.move(path, target / path.name)
        return target

    def _load_ca(self) -> _LoadedCA:
        if not self.is_initialized:
            raise CANotInitializedError(
                f"no CA in {self._dir} (ca.key and ca.crt are needed): run `f2 certs init` first"
            )
        try:
            key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise CAMismatchError(
                f"cannot read the CA in {self._dir} ({exc}); restore ca.key and ca.crt from a backup"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise CAMismatchError(
                f"{self.ca_key_path} holds a {type(key).__name__}; only EC and RSA CA keys are supported"
            )
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
            raise CAMismatchError(
                f"{self.ca_key_path} is not the key of {self.ca_cert_path}: restore the matching pair from a backup"
            )
        return _LoadedCA(key, cert)

    def ca_certificate(self) -> x509.Certificate:
        return self._load_ca().cert

    # -- issuing -------------------------------------------------------------------------------

    def issue_device(
        self,
        mac: str,
        days: int = DEVICE_DAYS,
        csr_pem: bytes | None = None,
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> IssuedCert:
        """Sign a client certificate for controller `mac` and write devices/<mac>.crt.

        With `csr_pem`, the CSR's signature must verify and its CN must be `mac`; its public key is
        certified and the device keeps the private key (a stale devices/<mac>.key is removed). Without,
        a key is generated, returned and written to devices/<mac>.key (0600).
        `not_before`/`not_after` (aware datetimes) override the validity; `days` fills in the missing
        end. They exist to mint already-expired certificates for tests. Earlier certificates of the
        same MAC stay valid until they expire or `revoke` is called.
        """
        validate_mac(mac)
        _check_days(days, "certificate validity")
        public_key: CertificatePublicKeyTypes
        key_pem: bytes | None
        if csr_pem is not None:
            public_key, key_pem = _public_key_from_csr(csr_pem, mac), None
        else:
            generated = generate_private_key()
            public_key, key_pem = generated.public_key(), private_key_pem(generated)
        with store.locked(self._dir):
            ca = self._load_ca()
            start, end = self._validity(ca, days, not_before, not_after)
            index = store.load_index(self.index_path)
            cert = _sign_leaf(
                ca,
                subject=mac,
                public_key=public_key,
                serial=_fresh_serial(index),
                not_before=start,
                not_after=end,
                usage=ExtendedKeyUsageOID.CLIENT_AUTH,
                san=None,
            )
            cert_pem = self._record(index, cert, mac, "device")
            store.ensure_dir(self.devices_dir, store.PRIVATE_DIR_MODE)
            key_path: Path | None = self.device_key_path(mac)
            if key_pem is not None:
                store.atomic_write(self.device_key_path(mac), key_pem, store.PRIVATE_MODE)
            else:
                # The device kept its own key; an older generated key no longer matches the certificate.
                self.device_key_path(mac).unlink(missing_ok=True)
                key_path = None
            cert_path = self.device_cert_path(mac)
            store.atomic_write(cert_path, cert_pem, store.PUBLIC_MODE)
        return IssuedCert(
            common_name=mac,
            kind="device",
            serial=_serial_hex(cert.serial_number),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            cert_pem=cert_pem,
            cert_path=cert_path,
            key_pem=key_pem,
            key_path=key_path,
        )

    def issue_service(self, name: str, days: int = SERVICE_DAYS) -> IssuedCert:
        """Sign a client certificate (clientAuth) for the platform service account `name` with a new key:
        services/<name>.crt (0644) and services/<name>.key (0600). The bridge presents it on the broker's
        device listener, where its CN is the account the ACL applies to. Renewing issues a new one; the old
        one stays valid until it expires."""
        validate_service_name(name)
        _check_days(days, "certificate validity")
        key = generate_private_key()
        with store.locked(self._dir):
            ca = self._load_ca()
            start, end = self._validity(ca, days, None, None)
            index = store.load_index(self.index_path)
            cert = _sign_leaf(
                ca,
                subject=name,
                public_key=key.public_key(),
                serial=_fresh_serial(index),
                not_before=start,
                not_after=end,
                usage=ExtendedKeyUsageOID.CLIENT_AUTH,
                san=None,
            )
            cert_pem = self._record(index, cert, name, "service")
            key_pem = private_key_pem(key)
            store.ensure_dir(self.services_dir, store.PRIVATE_DIR_MODE)
            store.atomic_write(self.service_key_path(name), key_pem, store.PRIVATE_MODE)
            store.atomic_write(self.service_cert_path(name), cert_pem, store.PUBLIC_MODE)
        return IssuedCert(
            common_name=name,
            kind="service",
            serial=_serial_hex(cert.serial_number),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            cert_pem=cert_pem,
            cert_path=self.service_cert_path(name),
            key_pem=key_pem,
            key_path=self.service_key_path(name),
        )

    def issue_server(self, hostnames: list[str], ips: list[str], days: int = SERVER_DAYS) -> IssuedCert:
        """Sign the broker certificate (serverAuth, SANs for every hostname and IP) and its new key.

        Writes server.crt (0644) and server.key (0640, group of `broker_user` when that user exists).
        Replacing them is the normal way to renew; the broker rereads both on SIGHUP.
        """
        _check_days(days, "certificate validity")
        dns_names, addresses = _server_names(hostnames, ips)
        common_name = dns_names[0] if dns_names else str(addresses[0])
        san: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        san += [x509.IPAddress(address) for address in addresses]
        with store.locked(self._dir):
            return self._issue_server(common_name, san, days)

    def _issue_server(self, common_name: str, san: list[x509.GeneralName], days: int) -> IssuedCert:
        key = generate_private_key()
        ca = self._load_ca()
        start, end = self._validity(ca, days, None, None)
        index = store.load_index(self.index_path)
        cert = _sign_leaf(
            ca,
            subject=common_name,
            public_key=key.public_key(),
            serial=_fresh_serial(index),
            not_before=start,
            not_after=end,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            san=san,
        )
        cert_pem = self._record(index, cert, common_name, "server")
        key_pem = private_key_pem(key)
        store.atomic_write(self.server_key_path, key_pem, store.BROKER_KEY_MODE)
        # Devices that trust only the root of an adopted intermediate need the intermediates from the broker.
        store.atomic_write(self.server_cert_path, cert_pem + self._intermediates_pem(), store.PUBLIC_MODE)
        if self._broker_user:
            self.grant_read(self.server_key_path, self._broker_user)
        return IssuedCert(
            common_name=common_name,
            kind="server",
            serial=_serial_hex(cert.serial_number),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            cert_pem=cert_pem,
            cert_path=self.server_cert_path,
            key_pem=key_pem,
            key_path=self.server_key_path,
        )

    def _validity(
        self, ca: _LoadedCA, days: int, not_before: datetime | None, not_after: datetime | None
    ) -> tuple[datetime, datetime]:
        span = timedelta(days=days)
        if not_before is not None:
            not_before = _check_aware(not_before, "not_before")
        if not_after is not None:
            not_after = _check_aware(not_after, "not_after")
        if not_before is None and not_after is None:
            now = self._now()
            not_before, not_after = now - CLOCK_SKEW, now + span
        elif not_before is None:
            assert not_after is not None
            not_before = not_after - span
        elif not_after is None:
            not_after = not_before + span
        # X.509 times have whole seconds; drop the rest so the index matches the certificate.
        not_before, not_after = not_before.replace(microsecond=0), not_after.replace(microsecond=0)
        if not_after <= not_before:
            raise ValidityError(
                f"not_after ({not_after.isoformat()}) must be later than not_before ({not_before.isoformat()})"
            )
        ca_end = ca.cert.not_valid_after_utc
        if not_after > ca_end:
            raise ValidityError(
                f"the certificate would outlive the CA (CA expires {ca_end.isoformat()}, requested "
                f"{not_after.isoformat()}): ask for fewer days, or replace the CA first"
            )
        return not_before, not_after

    def _record(
        self,
        index: CertIndex,
        cert: x509.Certificate,
        cn: str,
        kind: CertKind,
        *,
        origin: str = "issued",
        save: bool = True,
    ) -> bytes:
        """Keep a copy under issued/ and add the certificate to the index; returns its PEM."""
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        serial = _serial_hex(cert.serial_number)
        store.ensure_dir(self.issued_dir, store.DIR_MODE)
        store.atomic_write(self.issued_dir / f"{serial}.pem", cert_pem, store.PUBLIC_MODE)
        revoked_at = index.adopted_revocations.get(serial)
        index.entries.append(
            IndexEntry(
                serial=serial,
                cn=cn,
                kind=kind,
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                revoked=revoked_at is not None,
                revoked_at=revoked_at,
                origin=origin,
            )
        )
        if save:
            store.save_index(self.index_path, index)
        return cert_pem

    def _intermediates_pem(self) -> bytes:
        """The CA and its issuers below the root, as ca.crt holds them after an adoption (nothing for a root CA)."""
        try:
            bundle = adoption.load_certificates(self.ca_cert_path.read_bytes(), str(self.ca_cert_path))
        except (OSError, CAImportError):
            return b""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in bundle if not adoption.is_self_signed(c))

    # -- adoption ------------------------------------------------------------------------------

    def import_ca(
        self,
        cert_pem: bytes,
        key_pem: bytes,
        *,
        chain_pem: bytes = b"",
        crl_pem: bytes | None = None,
        key_password: bytes | None = None,
        replace: bool = False,
    ) -> AdoptedCA:
        """Make an existing CA this platform's: its devices keep their certificates.

        `cert_pem` holds the CA certificate, optionally followed by its chain up to the root (or give the
        chain in `chain_pem`); `key_pem` its private key (stored unencrypted, 0600, like a CA made here);
        `crl_pem` its current CRL, whose revocations every CRL published here keeps. Checked before anything is
        written (adoption.check_adoptable). A CA already here is refused (CAExistsError) unless `replace`:
        then it is archived like init(force=True), every certificate it issued stops being trusted, and the
        broker certificate is issued again, for the same names, by the adopted CA. Adopting the CA that is
        already here is a no-op that only merges `crl_pem`'s revocations.
        """
        now = self._now()
        certs = adoption.load_certificates(cert_pem, "the CA certificate file")
        extra = adoption.load_certificates(chain_pem, "the chain file") if chain_pem.strip() else []
        key = adoption.load_private_key(key_pem, key_password, "the CA key")
        adoptable = adoption.check_adoptable(certs, key, extra, now)
        revocations = adoption.revocations_of(crl_pem, adoptable.cert, now) if crl_pem is not None else []
        with store.locked(self._dir):
            have_key, have_cert = self.ca_key_path.exists(), self.ca_cert_path.exists()
            if have_key and have_cert and self._load_ca().cert == adoptable.cert:
                index = store.load_index(self.index_path)
                added = _merge_revocations(index, revocations)
                if added:
                    self._publish_crl(_LoadedCA(key, adoptable.cert), index)
                return AdoptedCA(adoptable, None, 0, None, added, already=True)
            if (have_key or have_cert) and not replace:
                raise CAExistsError(self._replacement_warning())
            old_names = self._server_names_in_use() if (have_key or have_cert) else None
            previous = len(store.load_index(self.index_path).entries) if (have_key or have_cert) else 0
            archived = self._archive() if (have_key or have_cert) else None
            store.ensure_dir(self._dir, store.DIR_MODE)
            store.atomic_write(self.ca_key_path, private_key_pem(key), store.PRIVATE_MODE)
            bundle = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in adoptable.bundle)
            store.atomic_write(self.ca_cert_path, bundle, store.PUBLIC_MODE)
            index = CertIndex()
            added = _merge_revocations(index, revocations)
            self._publish_crl(_LoadedCA(key, adoptable.cert), index)
            server = None
            if old_names:
                common_name, san = old_names
                server = self._issue_server(common_name, san, SERVER_DAYS)
        return AdoptedCA(adoptable, archived, previous, server, added, already=False)

    def _replacement_warning(self) -> str:
        index = store.load_index(self.index_path)
        devices = sorted({e.cn for e in index.entries if e.kind == "device" and not e.revoked})
        try:
            subject = self._load_ca().cert.subject.rfc4514_string()
        except CertsError:
            subject = "an unreadable CA"
        return (
            f"a CA ({subject}) is already initialised in {self._dir}, with {len(index.entries)} certificate(s) "
            f"recorded ({len(devices)} controller(s)). Adopting another replaces it: pass --replace. The current CA "
            f"and everything it issued move to {self._dir / 'archive'}; the broker then trusts only the adopted CA, "
            f"so devices holding certificates of the current one are refused until they enroll again (`f2 certs "
            f"allow-reenroll <mac>`) or are issued a new certificate (`f2 certs issue <mac>`); the broker's own "
            f"certificate is issued again by the adopted CA for the same names. Nothing was changed."
        )

    def _server_names_in_use(self) -> tuple[str, list[x509.GeneralName]] | None:
        """The common name and SANs of the broker certificate in use, to issue it again after a replacement."""
        try:
            cert = x509.load_pem_x509_certificate(self.server_cert_path.read_bytes())
        except (OSError, ValueError):
            return None
        try:
            san = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            return None
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(names[0].value) if names else str(san[0].value)
        return common_name, san

    def import_issued(self, paths: Iterable[Path]) -> ImportedCerts:
        """Record the device certificates the (adopted) CA issued before, from files and folders.

        Each is checked: signed by this CA, not a CA, CN a controller MAC, usable as a TLS client. Those that
        pass are recorded (index, issued/<serial>.pem, devices/<mac>.crt when it is the MAC's latest) and can
        then be listed, revoked and watched for expiry; a serial the adopted CA's CRL revoked is recorded as
        revoked. The others are returned with the reason; recording twice is a no-op.
        """
        result = ImportedCerts()
        with store.locked(self._dir):
            ca = self._load_ca()
            index = store.load_index(self.index_path)
            known = {entry.serial: entry for entry in index.entries}
            for finding in adoption.read_issued(paths, ca.cert):
                if finding.refusal is not None or finding.cert is None or finding.mac is None:
                    result.refused.append((finding.source, finding.refusal or "not a certificate"))
                    continue
                cert, mac = finding.cert, finding.mac
                serial = _serial_hex(cert.serial_number)
                if serial in known:
                    copy = self.issued_dir / f"{serial}.pem"
                    same = copy.exists() and x509.load_pem_x509_certificate(copy.read_bytes()) == cert
                    if same:
                        result.already.append((finding.source, mac, serial))
                    else:
                        result.refused.append(
                            (finding.source, f"serial {serial} is recorded already for another certificate")
                        )
                    continue
                self._record(index, cert, mac, "device", origin="imported", save=False)
                known[serial] = index.entries[-1]
                result.recorded.append((finding.source, mac, serial))
                latest = self.device_cert_path(mac)
                current = x509.load_pem_x509_certificate(latest.read_bytes()) if latest.exists() else None
                if current is None or current.not_valid_after_utc < cert.not_valid_after_utc:
                    store.ensure_dir(self.devices_dir, store.PRIVATE_DIR_MODE)
                    store.atomic_write(latest, cert.public_bytes(serialization.Encoding.PEM), store.PUBLIC_MODE)
            if result.recorded:
                store.save_index(self.index_path, index)
        return result

    # -- revocation ----------------------------------------------------------------------------

    def revoke(self, mac: str) -> list[str]:
        """Revoke every unrevoked certificate of controller `mac` and rewrite crl.pem.

        Returns the serials (lowercase hex) revoked now; an empty list when there was nothing left
        to revoke (crl.pem is then left as it is). The running broker does not notice a new CRL by
        itself: the caller reloads it (the platform CLI wires that; this library does not).
        """
        validate_mac(mac)
        with store.locked(self._dir):
            ca = self._load_ca()
            index = store.load_index(self.index_path)
            now = self._now().replace(microsecond=0)
            revoked: list[str] = []
            for position, entry in enumerate(index.entries):
                if entry.kind == "device" and entry.cn == mac and not entry.revoked:
                    index.entries[position] = entry.revoke(now)
                    revoked.append(entry.serial)
            if revoked:
                self._publish_crl(ca, index)
            return revoked

    def refresh_crl(self) -> datetime:
        """Re-sign crl.pem with a new next_update; returns it. Schedule this well within `crl_days`."""
        with store.locked(self._dir):
            ca = self._load_ca()
            crl = self._publish_crl(ca, store.load_index(self.index_path))
        next_update = crl.next_update_utc
        assert next_update is not None
        return next_update

    def crl_next_update(self) -> datetime | None:
        """When crl.pem stops being acceptable to OpenSSL; None when there is no CRL yet."""
        try:
            crl = x509.load_pem_x509_crl(self.crl_path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise CAMismatchError(f"{self.crl_path} cannot be parsed ({exc}); run `f2 certs crl`") from exc
        return crl.next_update_utc

    def _publish_crl(self, ca: _LoadedCA, index: CertIndex) -> x509.CertificateRevocationList:
        """Sign a CRL of every revoked serial in `index`, save the index, then write crl.pem."""
        last_update = self._crl_time(index.crl_last_update)
        index.crl_number += 1
        index.crl_last_update = last_update
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.cert.subject)
            .last_update(last_update)
            .next_update(last_update + timedelta(days=self._crl_days))
            .add_extension(x509.CRLNumber(index.crl_number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca.key_identifier),
                critical=False,
            )
        )
        revoked = {entry.serial: entry.revoked_at or last_update for entry in index.entries if entry.revoked}
        for serial, when in index.adopted_revocations.items():
            revoked.setdefault(serial, when)
        for serial, revoked_at in sorted(revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(int(serial, 16)).revocation_date(revoked_at).build()
            )
        crl = builder.sign(ca.key, hashes.SHA256())
        # Index first: a CRL write that fails is repaired by the next refresh; a lost index is not.
        store.save_index(self.index_path, index)
        store.atomic_write(self.crl_path, crl.public_bytes(serialization.Encoding.PEM), store.PUBLIC_MODE)
        return crl

    def _crl_time(self, previous: datetime | None) -> datetime:
        """A lastUpdate strictly after the previous CRL's, and not in the future.

        OpenSSL keeps a CRL it already holds unless the new one has a later lastUpdate, and refuses
        one whose lastUpdate is ahead of its clock; X.509 times have whole seconds, so a second CRL
        within the same second waits for the next one.
        """
        for _ in range(_CRL_WAIT_STEPS):
            now = self._now().replace(microsecond=0)
            if previous is None or now > previous:
                return now
            time.sleep(_CRL_WAIT_STEP_SECONDS)
        # The clock stands still or went back: a CRL a moment in the future beats one OpenSSL ignores.
        assert previous is not None
        return previous + timedelta(seconds=1)

    # -- listing -------------------------------------------------------------------------------

    def list_certs(self) -> list[CertInfo]:
        """Every certificate issued by this CA, ordered by kind, CN and start of validity."""
        index = store.load_index(self.index_path)
        now = self._now()
        latest_end: dict[tuple[str, str], datetime] = {}
        for entry in index.entries:
            if not entry.revoked:
                key = (entry.kind, entry.cn)
                latest_end[key] = max(latest_end.get(key, entry.not_after), entry.not_after)
        rows = []
        for entry in index.entries:
            expired = entry.not_after <= now
            rows.append(
                CertInfo(
                    serial=entry.serial,
                    common_name=entry.cn,
                    kind=entry.kind,
                    not_before=entry.not_before,
                    not_after=entry.not_after,
                    revoked=entry.revoked,
                    revoked_at=entry.revoked_at,
                    expired=expired,
                    expires_within_30_days=not expired and entry.not_after - now <= EXPIRY_WARNING,
                    superseded=not entry.revoked and latest_end[(entry.kind, entry.cn)] > entry.not_after,
                    origin=entry.origin,
                )
            )
        rows.sort(key=lambda row: (row.kind, row.common_name, row.not_before, row.serial))
        return rows

    # -- permissions ---------------------------------------------------------------------------

    def grant_read(self, path: Path, username: str) -> bool:
        """Give `username`'s primary group read access to `path` (e.g. server.key for `mosquitto`).

        Returns False when that user does not exist; raises PermissionSetupError when not allowed.
        """
        return store.grant_read(Path(path), username)

    def broker_files(self) -> list[Path]:
        """The files Mosquitto reads: cafile, certfile, keyfile, crlfile."""
        return [self.ca_cert_path, self.server_cert_path, self.server_key_path, self.crl_path]

    def _now(self) -> datetime:
        return _check_aware(self._clock(), "clock()")


def _merge_revocations(index: CertIndex, revocations: list[tuple[str, datetime]]) -> int:
    """Add an adopted CRL's revocations to the index (and to recorded entries); returns how many were new."""
    added = 0
    for serial, when in revocations:
        if serial not in index.adopted_revocations:
            index.adopted_revocations[serial] = when
            added += 1
    for position, entry in enumerate(index.entries):
        if not entry.revoked and entry.serial in index.adopted_revocations:
            index.entries[position] = entry.revoke(index.adopted_revocations[entry.serial])
    return added


@dataclass(frozen=True)
class AdoptedCA:
    """What import_ca did."""

    ca: adoption.AdoptableCA
    archived: Path | None  # where the replaced CA went
    previous_certificates: int  # how many certificates the replaced CA had recorded
    server: IssuedCert | None  # the broker certificate issued again for the replaced one's names
    revocations: int  # revocations taken from the adopted CA's CRL
    already: bool = False  # this CA was adopted already: nothing but the revocations changed


@dataclass
class ImportedCerts:
    """What import_issued did: (source, mac, serial) recorded or already known; (source, reason) refused."""

    recorded: list[tuple[str, str, str]] = field(default_factory=list)
    already: list[tuple[str, str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def _fresh_serial(index: CertIndex) -> int:
    taken = index.serials()
    while True:
        serial = x509.random_serial_number()
        if _serial_hex(serial) not in taken:
            return serial


def _sign_leaf(
    ca: _LoadedCA,
    *,
    subject: str,
    public_key: CertificatePublicKeyTypes,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    usage: x509.ObjectIdentifier,
    san: list[x509.GeneralName] | None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                # TLS 1.2 RSA key exchange encrypts to the key; EC keys only sign.
                key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca.key_identifier), critical=False
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def _public_key_from_csr(csr_pem: bytes, mac: str) -> CertificatePublicKeyTypes:
    if len(csr_pem) > MAX_CSR_BYTES:
        raise CSRError(f"CSR for {mac} is {len(csr_pem)} bytes; a PEM CSR is far below {MAX_CSR_BYTES}")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CSRError(f"CSR for {mac} is not a PEM certificate request ({exc}); send the PEM text") from exc
    if not csr.is_signature_valid:
        raise CSRError(f"CSR for {mac} is not signed by the key it contains; the device must regenerate it")
    names = [attribute.value for attribute in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [mac]:
        raise CSRError(
            f"CSR common name {names!r} does not match MAC {mac!r}: a controller may only enrol "
            f"with CN equal to its own MAC"
        )
    try:
        public_key = csr.public_key()
    except UnsupportedAlgorithm as exc:
        raise CSRError(f"CSR for {mac} uses an unsupported key type ({exc}); use EC P-256") from exc
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, _ACCEPTED_CURVES):
            raise CSRError(f"CSR for {mac} uses curve {public_key.curve.name}; use P-256 or P-384")
    elif isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < _MIN_RSA_BITS:
            raise CSRError(f"CSR for {mac} has a {public_key.key_size}-bit RSA key; use at least {_MIN_RSA_BITS} bits")
    else:
        raise CSRError(f"CSR for {mac} has a {type(public_key).__name__}; use an EC P-256 or RSA 2048 key")
    return public_key


def _server_names(
    hostnames: Iterable[str], ips: Iterable[str]
) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    if isinstance(hostnames, str) or isinstance(ips, str):
        raise InvalidSubjectError("hostnames and ips are lists of strings, not a single string")
    dns_names: list[str] = []
    for raw in hostnames:
        name = raw.strip().lower().rstrip(".")
        try:
            ipaddress.ip_address(name)
        except ValueError:
            pass
        else:
            raise InvalidSubjectError(f"{raw!r} is an IP address: pass it as an IP (--ip), not a hostname")
        if len(name) > 253 or not _HOSTNAME_RE.fullmatch(name):
            raise InvalidSubjectError(
                f"{raw!r} is not a valid DNS name (letters, digits and '-' in dot-separated labels)"
            )
        if name not in dns_names:
            dns_names.append(name)
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for raw in ips:
        try:
            address = ipaddress.ip_address(raw.strip())
        except ValueError as exc:
            raise InvalidSubjectError(f"{raw!r} is not an IPv4 or IPv6 address") from exc
        if address not in addresses:
            addresses.append(address)
    if not dns_names and not addresses:
        raise InvalidSubjectError(
            "a server certificate needs at least one hostname or IP address that clients connect to, "
            "e.g. --host localhost --ip 127.0.0.1"
        )
    return dns_names, addresses


__all__ = [
    "CA_DAYS",
    "CRL_DAYS",
    "DEVICE_DAYS",
    "SERVER_DAYS",
    "AdoptedCA",
    "CertInfo",
    "CertificateAuthority",
    "ImportedCerts",
    "IssuedCert",
    "generate_csr",
    "generate_private_key",
    "private_key_pem",
    "validate_mac",
]
