"""Adopting an existing CA (`f2 certs import-ca`) and recording what it issued (`f2 certs import-issued`).

The CAs and device certificates are made outside the platform: with the `openssl` tool (tests/openssl_ca.py),
or, for the certificates openssl 3.0 cannot make on the command line (already expired, wrong key usage), with
the cryptography API here. What is adopted is checked with `openssl verify` and the cryptography API.
"""

from __future__ import annotations

import re
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certs.authority import CertificateAuthority
from certs.cli import certs_group
from certs.errors import CAExistsError, CAImportError, KeyEncryptedError
from tests.openssl_ca import OPENSSL, OpensslCA

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl is not on PATH")

MAC, OTHER_MAC = "aabbccddee01", "aabbccddee02"
NOW = datetime.now(UTC)


@pytest.fixture
def pki(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki", broker_user=None)


@pytest.fixture
def root_ca(tmp_path: Path) -> OpensslCA:
    return OpensslCA(tmp_path / "deployment")


@pytest.fixture
def intermediate_ca(tmp_path: Path) -> OpensslCA:
    return OpensslCA(tmp_path / "deployment-chain", intermediate=True)


def verify(ca_file: Path, cert: Path, crl: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    extra = ["-crl_check", "-CRLfile", str(crl)] if crl else []
    return subprocess.run(
        [OPENSSL, "verify", "-CAfile", str(ca_file), *extra, "-purpose", "sslclient", str(cert)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def pem_blocks(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def adopt(pki: CertificateAuthority, deployment: OpensslCA, **kwargs: object) -> object:
    return pki.import_ca(
        deployment.issuing.cert.read_bytes(),
        deployment.issuing.key.read_bytes(),
        chain_pem=b"".join(p.read_bytes() for p in deployment.chain),
        **kwargs,  # type: ignore[arg-type]
    )


# --- certificates made with the cryptography API for the cases openssl's command line cannot make -----------


def mint_ca(
    name: str,
    *,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=3650),
    ca: bool = True,
    usage: x509.KeyUsage | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(key, hashes.SHA256()), key


def usage(cert_sign: bool, crl_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def crl_of(cert_path: Path, key_path: Path, revoked: list[int]) -> bytes:
    issuer = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(NOW - timedelta(hours=1))
        .next_update(NOW + timedelta(days=7))
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW - timedelta(hours=1)).build()
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]


# --- import-ca ---------------------------------------------------------------------------------------------


def test_a_root_ca_made_with_openssl_is_adopted_and_its_devices_stay_valid(
    pki: CertificateAuthority, root_ca: OpensslCA
) -> None:
    old_device = root_ca.issue_device(MAC)
    adopted = pki.import_ca(root_ca.root.cert.read_bytes(), root_ca.root.key.read_bytes())
    assert not adopted.already and adopted.archived is None  # type: ignore[attr-defined]
    assert mode(pki.ca_key_path) == 0o600 and mode(pki.ca_cert_path) == 0o644
    # The stored key is the CA's own, unencrypted like a CA made here.
    stored = serialization.load_pem_private_key(pki.ca_key_path.read_bytes(), None)
    original = serialization.load_pem_private_key(root_ca.root.key.read_bytes(), None)
    assert stored.private_numbers() == original.private_numbers()  # type: ignore[union-attr]
    assert pem_blocks(pki.ca_cert_path) == pem_blocks(root_ca.root.cert)
    # The device certificate issued before the adoption verifies against the platform's cafile and CRL.
    assert verify(pki.ca_cert_path, old_device.cert, pki.crl_path).returncode == 0
    # The CRL is the adopted CA's; what the platform issues now verifies against the deployment's own root.
    crl = x509.load_pem_x509_crl(pki.crl_path.read_bytes())
    assert crl.is_signature_valid(pem_blocks(root_ca.root.cert)[0].public_key())  # type: ignore[arg-type]
    new_device = pki.issue_device(OTHER_MAC)
    assert verify(root_ca.root.cert, new_device.cert_path).returncode == 0


def test_an_intermediate_ca_is_adopted_with_its_chain(pki: CertificateAuthority, intermediate_ca: OpensslCA) -> None:
    assert intermediate_ca.intermediate is not None
    old_device = intermediate_ca.issue_device(MAC)
    with pytest.raises(CAImportError, match="Deployment Root CA, which is not given: add the chain"):
        pki.import_ca(intermediate_ca.intermediate.cert.read_bytes(), intermediate_ca.intermediate.key.read_bytes())
    assert not pki.pki_dir.exists() or not pki.ca_key_path.exists()

    adopted = adopt(pki, intermediate_ca)
    assert [c.subject for c in adopted.ca.chain] == [pem_blocks(intermediate_ca.root.cert)[0].subject]  # type: ignore[attr-defined]
    bundle = pem_blocks(pki.ca_cert_path)
    assert bundle == pem_blocks(intermediate_ca.intermediate.cert) + pem_blocks(intermediate_ca.root.cert)
    assert verify(pki.ca_cert_path, old_device.cert, pki.crl_path).returncode == 0
    # The broker's certificate carries the intermediate: a device trusting only the root can verify it.
    server = pki.issue_server(["localhost"], ["127.0.0.1"])
    served = pem_blocks(server.cert_path)
    assert served[1:] == pem_blocks(intermediate_ca.intermediate.cert)
    assert OPENSSL is not None
    check = subprocess.run(
        [OPENSSL, "verify", "-CAfile", str(intermediate_ca.root.cert), "-untrusted", str(server.cert_path),
         "-purpose", "sslserver", str(server.cert_path)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    # The chain may also come after the CA in the same file.
    again = CertificateAuthority(pki.pki_dir.parent / "pki2", broker_user=None)
    both = intermediate_ca.intermediate.cert.read_bytes() + intermediate_ca.root.cert.read_bytes()
    again.import_ca(both, intermediate_ca.intermediate.key.read_bytes())
    assert pem_blocks(again.ca_cert_path) == bundle


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: mint_ca("Leaf", ca=False), "is not a CA certificate (basicConstraints CA:TRUE is missing)"),
        (lambda: mint_ca("No Sign", usage=usage(False, True)), "may not be used for keyCertSign (keyUsage)"),
        (lambda: mint_ca("No CRL", usage=usage(True, False)), "may not be used for cRLSign (keyUsage)"),
        (
            lambda: mint_ca("Old", not_before=NOW - timedelta(days=20), not_after=NOW - timedelta(days=1)),
            "expired on",
        ),
        (lambda: mint_ca("Future", not_before=NOW + timedelta(days=2)), "is not valid before"),
    ],
)
def test_a_certificate_that_cannot_be_a_ca_is_refused_and_nothing_is_written(
    pki: CertificateAuthority, make: object, message: str
) -> None:
    cert, key = make()  # type: ignore[operator]
    with pytest.raises(CAImportError, match=re.escape(message)) as caught:
        pki.import_ca(pem(cert), key_pem(key))
    assert "Nothing was changed" in str(caught.value)
    assert not pki.ca_key_path.exists() and not pki.ca_cert_path.exists()


def test_a_key_that_is_not_the_certificates_is_refused(pki: CertificateAuthority, root_ca: OpensslCA) -> None:
    _, other_key = mint_ca("Other")
    with pytest.raises(CAImportError, match="the key is not the key of the certificate CN=Deployment Root CA"):
        pki.import_ca(root_ca.root.cert.read_bytes(), key_pem(other_key))
    with pytest.raises(CAImportError, match="holds no PEM certificate"):
        pki.import_ca(b"not a certificate", root_ca.root.key.read_bytes())
    with pytest.raises(CAImportError, match="not a readable PEM private key"):
        pki.import_ca(root_ca.root.cert.read_bytes(), b"garbage")
    assert not pki.ca_key_path.exists()


def test_an_unrelated_chain_certificate_is_refused(pki: CertificateAuthority, root_ca: OpensslCA) -> None:
    stranger, _ = mint_ca("Stranger Root")
    with pytest.raises(CAImportError, match="not on the CA's path to its root: CN=Stranger Root"):
        pki.import_ca(root_ca.root.cert.read_bytes(), root_ca.root.key.read_bytes(), chain_pem=pem(stranger))


def test_an_encrypted_key_needs_its_passphrase(pki: CertificateAuthority) -> None:
    cert, key = mint_ca("Encrypted", usage=usage(True, True))
    with pytest.raises(KeyEncryptedError, match="is encrypted"):
        pki.import_ca(pem(cert), key_pem(key, b"s3cret"))
    with pytest.raises(CAImportError, match="wrong passphrase"):
        pki.import_ca(pem(cert), key_pem(key, b"s3cret"), key_password=b"nope")
    pki.import_ca(pem(cert), key_pem(key, b"s3cret"), key_password=b"s3cret")
    assert b"ENCRYPTED" not in pki.ca_key_path.read_bytes() and mode(pki.ca_key_path) == 0o600


def test_a_ca_already_here_is_replaced_only_when_asked(pki: CertificateAuthority, root_ca: OpensslCA) -> None:
    pki.init()
    issued_here = pki.issue_device(MAC)
    pki.issue_server(["broker.example"], ["10.0.0.5"])
    before = pki.ca_cert_path.read_bytes()
    with pytest.raises(CAExistsError, match="pass --replace") as caught:
        adopt(pki, root_ca)
    assert "2 certificate(s) recorded (1 controller(s))" in str(caught.value)
    assert pki.ca_cert_path.read_bytes() == before

    adopted = adopt(pki, root_ca, replace=True)
    assert adopted.archived is not None and (adopted.archived / "ca.crt").read_bytes() == before  # type: ignore[attr-defined]
    assert adopted.previous_certificates == 2  # type: ignore[attr-defined]
    # What the replaced CA issued is no longer trusted; the broker's names are kept, from the adopted CA.
    assert verify(pki.ca_cert_path, adopted.archived / "devices" / f"{MAC}.crt").returncode != 0  # type: ignore[attr-defined]
    assert issued_here.serial not in {c.serial for c in pki.list_certs()}
    server = pem_blocks(pki.server_cert_path)[0]
    assert server.issuer == pem_blocks(root_ca.root.cert)[0].subject
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["broker.example"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]

    # The same CA once more: nothing changes.
    crl = pki.crl_path.read_bytes()
    assert adopt(pki, root_ca).already  # type: ignore[attr-defined]
    assert pki.crl_path.read_bytes() == crl


def test_the_adopted_cas_revocations_stay_in_force(pki: CertificateAuthority, root_ca: OpensslCA) -> None:
    revoked_before = root_ca.issue_device(MAC)
    serial = pem_blocks(revoked_before.cert)[0].serial_number
    crl = crl_of(root_ca.root.cert, root_ca.root.key, [serial])
    adopted = pki.import_ca(root_ca.root.cert.read_bytes(), root_ca.root.key.read_bytes(), crl_pem=crl)
    assert adopted.revocations == 1
    published = x509.load_pem_x509_crl(pki.crl_path.read_bytes())
    assert published.get_revoked_certificate_by_serial_number(serial) is not None
    refused = verify(pki.ca_cert_path, revoked_before.cert, pki.crl_path)
    assert refused.returncode != 0 and "revoked" in refused.stdout + refused.stderr
    # Recorded afterwards, it is listed as revoked; every later CRL keeps it.
    pki.import_issued([revoked_before.cert])
    (row,) = pki.list_certs()
    assert row.revoked and row.origin == "imported"
    pki.refresh_crl()
    assert x509.load_pem_x509_crl(pki.crl_path.read_bytes()).get_revoked_certificate_by_serial_number(serial)
    # A CRL of another CA is refused.
    other = OpensslCA(root_ca.folder.parent / "other", name="Other")
    with pytest.raises(CAImportError, match="not signed by the CA"):
        CertificateAuthority(pki.pki_dir.parent / "pki3", broker_user=None).import_ca(
            root_ca.root.cert.read_bytes(),
            root_ca.root.key.read_bytes(),
            crl_pem=crl_of(other.root.cert, other.root.key, []),
        )


# --- import-issued -----------------------------------------------------------------------------------------


def test_issued_certificates_are_recorded_listed_revoked_and_watched(
    pki: CertificateAuthority, root_ca: OpensslCA, tmp_path: Path
) -> None:
    first, second = root_ca.issue_device(MAC), root_ca.issue_device(OTHER_MAC, days=10)
    stranger = OpensslCA(tmp_path / "stranger", name="Stranger").issue_device(MAC)
    folder = tmp_path / "issued"
    folder.mkdir()
    (folder / "a.pem").write_bytes(first.cert.read_bytes())
    der = pem_blocks(second.cert)[0].public_bytes(serialization.Encoding.DER)
    (folder / "b.cer").write_bytes(der)
    (folder / "stranger.crt").write_bytes(stranger.cert.read_bytes())
    (folder / "root.crt").write_bytes(root_ca.root.cert.read_bytes())
    (folder / "broken.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    (folder / "notes.txt").write_text("not looked at")
    pki.import_ca(root_ca.root.cert.read_bytes(), root_ca.root.key.read_bytes())

    result = pki.import_issued([folder])
    assert sorted((Path(s).name, mac) for s, mac, _ in result.recorded) == [("a.pem", MAC), ("b.cer", OTHER_MAC)]
    refused = {Path(s.split(" ")[0]).name: reason for s, reason in result.refused}
    assert set(refused) == {"stranger.crt", "root.crt", "broken.pem"}
    assert "not issued by the adopted CA" in refused["stranger.crt"]
    assert "adopted CA itself" in refused["root.crt"]
    assert "cannot be read" in refused["broken.pem"]

    rows = {row.common_name: row for row in pki.list_certs()}
    assert {r.origin for r in rows.values()} == {"imported"}
    assert rows[OTHER_MAC].expires_within_30_days and not rows[MAC].expires_within_30_days
    assert pki.device_cert_path(MAC).read_bytes() == first.cert.read_bytes()
    assert not pki.device_key_path(MAC).exists(), "the device keeps its key"

    again = pki.import_issued([folder])
    assert not again.recorded and len(again.already) == 2

    serials = pki.revoke(MAC)
    assert serials == [format(pem_blocks(first.cert)[0].serial_number, "x")]
    refused_now = verify(pki.ca_cert_path, first.cert, pki.crl_path)
    assert refused_now.returncode != 0 and "revoked" in refused_now.stdout + refused_now.stderr
    assert verify(pki.ca_cert_path, second.cert, pki.crl_path).returncode == 0


def test_cli_import_ca_and_import_issued(tmp_path: Path, intermediate_ca: OpensslCA) -> None:
    assert intermediate_ca.intermediate is not None
    device = intermediate_ca.issue_device(MAC)
    pki_dir = tmp_path / "pki"
    changed: list[Path] = []
    obj = {"pki_dir": pki_dir, "registry_macs": None, "broker_user": None, "on_ca_changed": changed.append}
    runner = CliRunner()
    args = [
        "import-ca",
        "--cert",
        str(intermediate_ca.intermediate.cert),
        "--key",
        str(intermediate_ca.intermediate.key),
    ]
    result = runner.invoke(certs_group, args, obj=obj)
    assert result.exit_code == 1 and "which is not given" in result.output and not changed

    result = runner.invoke(certs_group, [*args, "--chain", str(intermediate_ca.root.cert)], obj=obj)
    assert result.exit_code == 0, result.output
    assert "adopted CA CN=Deployment Device CA" in result.output and "chain: CN=Deployment Root CA" in result.output
    assert "WARNING: no --crl given" in result.output and changed == [pki_dir]

    result = runner.invoke(certs_group, ["import-issued", str(device.cert), str(intermediate_ca.root.cert)], obj=obj)
    assert result.exit_code == 1
    assert f"({MAC}) from {device.cert}" in result.output and "1 certificate(s) refused" in result.output

    result = runner.invoke(certs_group, ["list"], obj=obj)
    assert MAC in result.output and "device (imported)" in result.output

    other = OpensslCA(tmp_path / "other", name="Other")
    result = runner.invoke(
        certs_group, ["import-ca", "--cert", str(other.root.cert), "--key", str(other.root.key)], obj=obj
    )
    assert result.exit_code == 1 and "pass --replace" in result.output
