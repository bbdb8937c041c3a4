"""The PKI library, checked with the cryptography API, the `openssl` tool and a real TLS handshake."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.authority import CertificateAuthority, generate_csr, validate_mac
from certs.cli import certs_group
from certs.errors import (
    CANotInitializedError,
    CertsError,
    CSRError,
    IndexCorruptError,
    InvalidMacError,
    InvalidSubjectError,
    ValidityError,
)

MAC = "aabbccddee01"
OTHER_MAC = "aabbccddee02"
BAD_MACS = [
    "AABBCCDDEE01",
    "aabbccddeE01",
    "aa:bb:cc:dd:ee:01",
    "aa-bb-cc-dd-ee-01",
    "aabbccddee0",
    "aabbccddee011",
    "aabbccddee0+",
    "aabbccddee#1",
    "aabbcc/dee01",
    "aabbccddee0g",
    "",
    "aabbccddee01\n",
    " aabbccddee01",
    "f2-aabbccddee01",
]
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl is not on PATH")


def current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    return tmp_path / "pki"


@pytest.fixture
def ca(pki: Path) -> CertificateAuthority:
    authority = CertificateAuthority(pki, broker_user=None)
    assert authority.init() is True
    return authority


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def load_crl(path: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def common_name(cert: x509.Certificate) -> str:
    (attribute,) = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attribute.value)


def spki(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | object) -> bytes:
    assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def openssl_verify(ca: CertificateAuthority, cert: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, "verify", "-CAfile", str(ca.ca_cert_path), *extra, str(cert)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def openssl_verify_with_crl(ca: CertificateAuthority, cert: Path) -> subprocess.CompletedProcess[str]:
    return openssl_verify(ca, cert, "-crl_check", "-CRLfile", str(ca.crl_path))


# -- MAC validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("mac", ["aabbccddee01", "000000000000", "0123456789af"])
def test_valid_macs_pass_unchanged(mac: str) -> None:
    assert validate_mac(mac) == mac


@pytest.mark.parametrize("mac", [*BAD_MACS, None, 0xAABBCCDDEE01, b"aabbccddee01"])
def test_bad_macs_are_refused_everywhere(ca: CertificateAuthority, mac: object) -> None:
    with pytest.raises(InvalidMacError, match="12 lowercase hex digits"):
        validate_mac(mac)
    with pytest.raises(CertsError):
        ca.issue_device(mac)  # type: ignore[arg-type]
    with pytest.raises(CertsError):
        ca.revoke(mac)  # type: ignore[arg-type]
    with pytest.raises(CertsError):
        generate_csr(mac)  # type: ignore[arg-type]
    assert not ca.devices_dir.exists()
    assert ca.list_certs() == []


def test_bad_mac_message_suggests_the_canonical_form() -> None:
    with pytest.raises(InvalidMacError, match="did you mean aabbccddee01"):
        validate_mac("AA:BB:CC:DD:EE:01")


# -- CA --------------------------------------------------------------------------------------


def test_init_writes_a_self_signed_ca_key_0600_and_an_empty_crl(ca: CertificateAuthority) -> None:
    assert mode(ca.ca_key_path) == 0o600
    assert mode(ca.ca_cert_path) == 0o644
    assert mode(ca.crl_path) == 0o644
    cert = load_cert(ca.ca_cert_path)
    cert.verify_directly_issued_by(cert)
    assert common_name(cert) == "F2 Platform CA"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    key = serialization.load_pem_private_key(ca.ca_key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert spki(key.public_key()) == spki(cert.public_key())
    crl = load_crl(ca.crl_path)
    assert crl.is_signature_valid(cert.public_key())  # type: ignore[arg-type]
    assert len(crl) == 0
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=7)


def test_init_is_idempotent_and_never_overwrites_without_force(ca: CertificateAuthority) -> None:
    key, cert = ca.ca_key_path.read_bytes(), ca.ca_cert_path.read_bytes()
    ca.crl_path.unlink()
    assert ca.init(common_name="Another CA") is False
    assert ca.ca_key_path.read_bytes() == key
    assert ca.ca_cert_path.read_bytes() == cert
    assert ca.crl_path.exists(), "a missing CRL is rewritten so Mosquitto can start"


def test_init_force_replaces_the_ca_and_archives_the_old_one(ca: CertificateAuthority) -> None:
    old_key = ca.ca_key_path.read_bytes()
    ca.issue_device(MAC)
    assert ca.init(force=True) is True
    assert ca.ca_key_path.read_bytes() != old_key
    assert ca.list_certs() == []
    (archived,) = (ca.pki_dir / "archive").iterdir()
    assert (archived / "ca.key").read_bytes() == old_key
    assert (archived / "devices" / f"{MAC}.crt").exists()


def test_init_refuses_half_a_ca(ca: CertificateAuthority) -> None:
    ca.ca_cert_path.unlink()
    with pytest.raises(CANotInitializedError, match=r"ca\.crt does not"):
        ca.init()


def test_operations_need_a_ca_first(pki: Path) -> None:
    authority = CertificateAuthority(pki, broker_user=None)
    with pytest.raises(CANotInitializedError, match="certs init"):
        authority.issue_device(MAC)
    with pytest.raises(CANotInitializedError):
        authority.revoke(MAC)


# -- device certificates -------------------------------------------------------------------------


def test_issue_device_signs_a_client_cert_with_cn_mac(ca: CertificateAuthority) -> None:
    issued = ca.issue_device(MAC)
    ca_cert = load_cert(ca.ca_cert_path)
    cert = load_cert(ca.pki_dir / "devices" / f"{MAC}.crt")
    cert.verify_directly_issued_by(ca_cert)
    assert common_name(cert) == MAC
    assert format(cert.serial_number, "x") == issued.serial
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    key_path = ca.pki_dir / "devices" / f"{MAC}.key"
    assert issued.key_path == key_path
    assert mode(key_path) == 0o600
    assert key_path.read_bytes() == issued.key_pem
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert spki(key.public_key()) == spki(cert.public_key())
    now = datetime.now(UTC)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    assert timedelta(days=364) < cert.not_valid_after_utc - now <= timedelta(days=365)


def test_serials_are_random_and_unique(ca: CertificateAuthority) -> None:
    serials = [ca.issue_device(MAC).serial for _ in range(25)]
    assert len(set(serials)) == 25
    assert all(int(serial, 16) > 2**64 for serial in serials)
    assert sorted(row.serial for row in ca.list_certs()) == sorted(serials)
    assert {path.stem for path in (ca.pki_dir / "issued").iterdir()} == set(serials)


def test_issue_device_from_csr_keeps_the_key_on_the_device(ca: CertificateAuthority) -> None:
    ca.issue_device(MAC)  # leaves a generated key behind, which the CSR certificate replaces
    key_pem, csr_pem = generate_csr(MAC)
    issued = ca.issue_device(MAC, csr_pem=csr_pem)
    assert issued.key_pem is None and issued.key_path is None
    assert not (ca.pki_dir / "devices" / f"{MAC}.key").exists()
    cert = load_cert(ca.pki_dir / "devices" / f"{MAC}.crt")
    cert.verify_directly_issued_by(load_cert(ca.ca_cert_path))
    device_key = serialization.load_pem_private_key(key_pem, password=None)
    assert spki(device_key.public_key()) == spki(cert.public_key())
    assert common_name(cert) == MAC


def test_csr_for_another_mac_is_refused(ca: CertificateAuthority) -> None:
    _, csr_pem = generate_csr(OTHER_MAC)
    with pytest.raises(CSRError, match="does not match MAC"):
        ca.issue_device(MAC, csr_pem=csr_pem)
    assert ca.list_certs() == []


def test_csr_with_extra_or_missing_cn_is_refused(ca: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    for names in ([], [MAC, MAC]):
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name) for name in names])
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        with pytest.raises(CSRError, match="does not match MAC"):
            ca.issue_device(MAC, csr_pem=csr.public_bytes(serialization.Encoding.PEM))


def test_csr_with_a_broken_signature_is_refused(ca: CertificateAuthority) -> None:
    _, csr_pem = generate_csr(MAC)
    der = bytearray(x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CSRError, match="not signed by the key"):
        ca.issue_device(MAC, csr_pem=tampered)


def test_csr_garbage_and_weak_keys_are_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(CSRError, match="not a PEM certificate request"):
        ca.issue_device(MAC, csr_pem=b"-----BEGIN CERTIFICATE REQUEST-----\nnope\n")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, MAC)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(weak, hashes.SHA256())
    with pytest.raises(CSRError, match="at least 2048"):
        ca.issue_device(MAC, csr_pem=csr.public_bytes(serialization.Encoding.PEM))


def test_expired_certificate_can_be_minted(ca: CertificateAuthority) -> None:
    now = datetime.now(UTC)
    issued = ca.issue_device(MAC, not_before=now - timedelta(days=30), not_after=now - timedelta(days=1))
    cert = load_cert(issued.cert_path)
    assert cert.not_valid_after_utc < datetime.now(UTC)
    cert.verify_directly_issued_by(load_cert(ca.ca_cert_path))
    (row,) = ca.list_certs()
    assert row.expired and not row.expires_within_30_days


def test_not_after_alone_counts_days_backwards(ca: CertificateAuthority) -> None:
    end = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    issued = ca.issue_device(MAC, days=10, not_after=end)
    assert issued.not_after == end
    assert issued.not_before == end - timedelta(days=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"not_after": datetime(2020, 1, 1)}, "no timezone"),
        (
            {"not_before": datetime(2020, 1, 2, tzinfo=UTC), "not_after": datetime(2020, 1, 1, tzinfo=UTC)},
            "must be later",
        ),
        ({"days": 0}, ">= 1"),
        ({"days": 40000}, "outlive the CA"),
    ],
)
def test_bad_validity_is_refused(ca: CertificateAuthority, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidityError, match=message):
        ca.issue_device(MAC, **kwargs)  # type: ignore[arg-type]


# -- server certificate --------------------------------------------------------------------------


def test_issue_server_writes_sans_and_server_auth(ca: CertificateAuthority) -> None:
    issued = ca.issue_server(["localhost", "Mosquitto", "localhost"], ["127.0.0.1", "::1"])
    cert = load_cert(ca.server_cert_path)
    cert.verify_directly_issued_by(load_cert(ca.ca_cert_path))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "mosquitto"]
    assert san.get_values_for_type(x509.IPAddress) == [ip_address("127.0.0.1"), ip_address("::1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert common_name(cert) == "localhost" == issued.common_name
    assert mode(ca.server_key_path) == 0o640
    assert mode(ca.server_cert_path) == 0o644
    key = serialization.load_pem_private_key(ca.server_key_path.read_bytes(), password=None)
    assert spki(key.public_key()) == spki(cert.public_key())
    assert [row.kind for row in ca.list_certs()] == ["server"]


@pytest.mark.parametrize(
    ("hosts", "ips", "message"),
    [
        ([], [], "at least one hostname or IP"),
        (["127.0.0.1"], [], "is an IP address"),
        (["bad host"], [], "not a valid DNS name"),
        (["-bad.example"], [], "not a valid DNS name"),
        ([], ["300.1.1.1"], "not an IPv4 or IPv6"),
    ],
)
def test_bad_server_names_are_refused(ca: CertificateAuthority, hosts: list[str], ips: list[str], message: str) -> None:
    with pytest.raises(InvalidSubjectError, match=message):
        ca.issue_server(hosts, ips)


def test_server_key_goes_to_the_broker_users_group(pki: Path) -> None:
    user = pwd.getpwnam(current_user())
    authority = CertificateAuthority(pki, broker_user=user.pw_name)
    authority.init()
    authority.issue_server(["localhost"], [])
    assert authority.server_key_path.stat().st_gid == user.pw_gid
    assert mode(authority.server_key_path) == 0o640
    assert mode(authority.ca_key_path) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a file to another group")
def test_server_key_defaults_to_the_mosquitto_group_when_that_user_exists(pki: Path) -> None:
    try:
        gid = pwd.getpwnam("mosquitto").pw_gid
    except KeyError:
        pytest.skip("no mosquitto user on this machine")
    authority = CertificateAuthority(pki)
    authority.init()
    authority.issue_server(["localhost"], [])
    assert authority.server_key_path.stat().st_gid == gid
    assert authority.ca_key_path.stat().st_gid == 0 and mode(authority.ca_key_path) == 0o600


def test_grant_read_without_such_user_changes_nothing(ca: CertificateAuthority) -> None:
    before = ca.ca_cert_path.stat()
    assert ca.grant_read(ca.ca_cert_path, "no-such-user-f2") is False
    after = ca.ca_cert_path.stat()
    assert (before.st_gid, before.st_mode) == (after.st_gid, after.st_mode)


# -- revocation ----------------------------------------------------------------------------------


def test_revoke_lists_every_cert_of_the_mac_in_a_signed_crl(ca: CertificateAuthority) -> None:
    first, second = ca.issue_device(MAC), ca.issue_device(MAC)
    other = ca.issue_device(OTHER_MAC)
    number_before = load_crl(ca.crl_path).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number

    revoked = ca.revoke(MAC)

    assert sorted(revoked) == sorted([first.serial, second.serial])
    crl = load_crl(ca.crl_path)
    assert crl.is_signature_valid(load_cert(ca.ca_cert_path).public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(int(first.serial, 16)) is not None
    assert crl.get_revoked_certificate_by_serial_number(int(second.serial, 16)) is not None
    assert crl.get_revoked_certificate_by_serial_number(int(other.serial, 16)) is None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > number_before
    rows = {row.serial: row for row in ca.list_certs()}
    assert rows[first.serial].revoked and rows[first.serial].revoked_at is not None
    assert not rows[other.serial].revoked
    assert ca.revoke(MAC) == [], "nothing left to revoke"
    assert ca.revoke("aabbccddee09") == []


def test_every_crl_is_strictly_newer_than_the_last(ca: CertificateAuthority) -> None:
    # OpenSSL keeps the CRL it holds unless the new one has a later lastUpdate; never one in the future.
    previous = load_crl(ca.crl_path).last_update_utc
    for mac in (MAC, OTHER_MAC):
        ca.issue_device(mac)
        ca.revoke(mac)
        crl = load_crl(ca.crl_path)
        assert previous < crl.last_update_utc <= datetime.now(UTC)
        previous = crl.last_update_utc


def test_refresh_crl_extends_its_expiry(pki: Path) -> None:
    authority = CertificateAuthority(pki, broker_user=None, crl_days=2)
    authority.init()
    first = authority.crl_next_update()
    assert first is not None
    second = authority.refresh_crl()
    assert second > first
    assert authority.crl_next_update() == second


# -- index and listing -----------------------------------------------------------------------------


def test_index_records_what_was_issued_and_revoked(ca: CertificateAuthority) -> None:
    issued = ca.issue_device(MAC)
    ca.revoke(MAC)
    raw = json.loads(ca.index_path.read_text())
    (entry,) = raw["certs"]
    assert entry["serial"] == issued.serial
    assert entry["cn"] == MAC
    assert entry["kind"] == "device"
    assert entry["revoked"] is True and entry["revoked_at"]
    assert datetime.fromisoformat(entry["not_after"]) == issued.not_after
    assert mode(ca.index_path) == 0o600
    assert not [path for path in ca.pki_dir.iterdir() if path.name.endswith(".tmp")]


def test_a_corrupt_index_is_reported_not_overwritten(ca: CertificateAuthority) -> None:
    ca.index_path.write_text("{not json")
    with pytest.raises(IndexCorruptError, match="restore it from a backup"):
        ca.issue_device(MAC)
    assert ca.index_path.read_text() == "{not json"


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_list_certs_flags_expiry_with_the_injected_clock(pki: Path) -> None:
    clock = FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    authority = CertificateAuthority(pki, broker_user=None, clock=clock)
    authority.init()
    authority.issue_device(MAC, days=365)
    clock.now += timedelta(days=300)
    (row,) = authority.list_certs()
    assert not row.expires_within_30_days and not row.expired
    clock.now += timedelta(days=50)
    (row,) = authority.list_certs()
    assert row.expires_within_30_days and not row.expired
    assert row.mac == MAC
    clock.now += timedelta(days=30)
    (row,) = authority.list_certs()
    assert row.expired and not row.expires_within_30_days


def test_a_renewed_certificate_supersedes_the_old_one(ca: CertificateAuthority) -> None:
    now = datetime.now(UTC)
    old = ca.issue_device(MAC, not_after=now + timedelta(days=5))
    new = ca.issue_device(MAC)
    rows = {row.serial: row for row in ca.list_certs()}
    assert rows[old.serial].superseded and rows[old.serial].expires_within_30_days
    assert not rows[new.serial].superseded


# -- independent checks: openssl and a TLS handshake -------------------------------------------------


@needs_openssl
def test_openssl_accepts_the_chain_before_revoke_and_refuses_it_after(ca: CertificateAuthority) -> None:
    ca.issue_device(MAC)
    kept = ca.issue_device(OTHER_MAC)
    cert = ca.pki_dir / "devices" / f"{MAC}.crt"
    before = openssl_verify_with_crl(ca, cert)
    assert before.returncode == 0, before.stdout + before.stderr
    assert openssl_verify(ca, cert, "-purpose", "sslclient").returncode == 0

    ca.revoke(MAC)

    after = openssl_verify_with_crl(ca, cert)
    assert after.returncode != 0
    assert "certificate revoked" in after.stdout + after.stderr
    still = openssl_verify_with_crl(ca, kept.cert_path)
    assert still.returncode == 0, still.stdout + still.stderr


@needs_openssl
def test_openssl_refuses_an_expired_certificate(ca: CertificateAuthority) -> None:
    now = datetime.now(UTC)
    issued = ca.issue_device(MAC, not_before=now - timedelta(days=10), not_after=now - timedelta(days=1))
    result = openssl_verify_with_crl(ca, issued.cert_path)
    assert result.returncode != 0
    assert "expired" in result.stdout + result.stderr


@needs_openssl
def test_openssl_accepts_the_server_certificate_for_tls_servers(ca: CertificateAuthority) -> None:
    ca.issue_server(["localhost"], ["127.0.0.1"])
    result = openssl_verify(ca, ca.server_cert_path, "-purpose", "sslserver", "-verify_hostname", "localhost")
    assert result.returncode == 0, result.stdout + result.stderr
    result = openssl_verify(ca, ca.server_cert_path, "-verify_ip", "127.0.0.1")
    assert result.returncode == 0, result.stdout + result.stderr


def mtls_handshake(ca: CertificateAuthority, cert: Path, key: Path) -> BaseException | None:
    """One mutual-TLS handshake configured like the broker; returns the server side's error, if any."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(ca.server_cert_path, ca.server_key_path)
    server_ctx.load_verify_locations(cafile=ca.ca_cert_path)
    server_ctx.load_verify_locations(cafile=ca.crl_path)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cafile=ca.ca_cert_path)
    client_ctx.load_cert_chain(cert, key)

    server_sock, client_sock = socket.socketpair()
    server_sock.settimeout(10)
    client_sock.settimeout(10)
    outcome: list[BaseException | None] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(server_sock, server_side=True) as tls:
                tls.sendall(b"ok")
                outcome.append(None)
        except (ssl.SSLError, OSError) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(client_sock, server_hostname="localhost") as tls:
            tls.recv(2)
    except (ssl.SSLError, OSError):
        pass  # the server's verdict is what counts
    finally:
        client_sock.close()
        thread.join(timeout=15)
    return outcome[0]


def test_mtls_handshake_succeeds_until_the_device_is_revoked(ca: CertificateAuthority) -> None:
    ca.issue_server(["localhost"], ["127.0.0.1"])
    issued = ca.issue_device(MAC)
    assert issued.key_path is not None
    assert mtls_handshake(ca, issued.cert_path, issued.key_path) is None
    ca.revoke(MAC)
    error = mtls_handshake(ca, issued.cert_path, issued.key_path)
    assert isinstance(error, ssl.SSLError)
    assert "revoked" in str(error)


# -- CLI -------------------------------------------------------------------------------------------


def run_cli(pki: Path, *args: str, **obj: object) -> tuple[int, str]:
    context: dict[str, object] = {"pki_dir": pki, "registry_macs": None, "broker_user": None, **obj}
    result = CliRunner().invoke(certs_group, list(args), obj=context, catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_init_issue_list_revoke(pki: Path, tmp_path: Path) -> None:
    crl_updates: list[Path] = []
    code, out = run_cli(pki, "init")
    assert code == 0 and "created CA" in out
    code, out = run_cli(pki, "init")
    assert code == 0 and "already exists" in out

    out_dir = tmp_path / "provision"
    code, out = run_cli(pki, "issue", MAC, "--days", "20", "--out", str(out_dir))
    assert code == 0, out
    assert {path.name for path in out_dir.iterdir()} == {f"{MAC}.crt", f"{MAC}.key", "ca.crt"}
    assert mode(out_dir / f"{MAC}.key") == 0o600

    code, out = run_cli(pki, "server", "--host", "localhost", "--ip", "127.0.0.1")
    assert code == 0, out

    code, out = run_cli(pki, "list")
    assert code == 0
    assert out.splitlines()[0].split() == ["SERIAL", "MAC/CN", "KIND", "EXPIRES", "REVOKED"]
    assert "WARNING: device certificate" in out and f"`f2 certs issue {MAC}`" in out
    assert "localhost" in out

    code, out = run_cli(pki, "revoke", MAC, on_crl_updated=crl_updates.append)
    assert code == 0 and "revoked" in out
    assert crl_updates == [pki / "crl.pem"]
    code, out = run_cli(pki, "list")
    assert "WARNING: device" not in out, "a revoked certificate needs no renewal"
    code, out = run_cli(pki, "revoke", MAC)
    assert code == 0 and "already revoked" in out


def test_cli_issue_refuses_a_mac_missing_from_the_registry(pki: Path) -> None:
    run_cli(pki, "init")
    code, out = run_cli(pki, "issue", OTHER_MAC, registry_macs=lambda: {MAC})
    assert code == 1
    assert f"MAC {OTHER_MAC} is not a controller in the registry; add it first" in out
    code, out = run_cli(pki, "issue", MAC, registry_macs=lambda: {MAC})
    assert code == 0, out


@pytest.mark.parametrize("mac", ["AABBCCDDEE01", "aabbccddee0+", "aabbcc/dee01"])
def test_cli_refuses_bad_macs(pki: Path, mac: str) -> None:
    run_cli(pki, "init")
    code, out = run_cli(pki, "issue", mac)
    assert code == 1 and "12 lowercase hex digits" in out
    assert not (pki / "devices").exists()


def test_cli_reads_the_pki_dir_from_a_factory_or_the_option(tmp_path: Path) -> None:
    calls: list[int] = []

    def factory() -> Path:
        calls.append(1)
        return tmp_path / "from-factory"

    code, _ = run_cli(factory, "init")  # type: ignore[arg-type]
    assert code == 0 and (tmp_path / "from-factory" / "ca.crt").exists() and calls
    code, _ = run_cli(factory, "--pki-dir", str(tmp_path / "from-option"), "init")  # type: ignore[arg-type]
    assert code == 0 and (tmp_path / "from-option" / "ca.crt").exists()


def test_cli_revoke_of_an_unknown_mac_and_missing_ca_say_what_to_do(pki: Path) -> None:
    code, out = run_cli(pki, "issue", MAC)
    assert code == 1 and "certs init" in out
    run_cli(pki, "init")
    code, out = run_cli(pki, "revoke", MAC)
    assert code == 1 and "no certificate was ever issued" in out


def test_cli_issue_signs_a_csr(pki: Path, tmp_path: Path) -> None:
    run_cli(pki, "init")
    _, csr_pem = generate_csr(MAC)
    csr_path = tmp_path / "device.csr"
    csr_path.write_bytes(csr_pem)
    code, out = run_cli(pki, "issue", MAC, "--csr", str(csr_path))
    assert code == 0, out
    assert not (pki / "devices" / f"{MAC}.key").exists()
