"""Service certificates (`f2 certs service NAME`): a platform service's client certificate from the platform CA, as
the bridge presents on the broker's device listener, whose CN is the broker account its ACL applies to. Checked
with openssl and cryptography, never with the module's own code."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.authority import CertificateAuthority
from certs.cli import certs_group
from certs.errors import InvalidSubjectError

OPENSSL = shutil.which("openssl")


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    authority = CertificateAuthority(tmp_path / "pki", broker_user=None)
    assert authority.init() is True
    return authority


def test_a_service_certificate_is_a_client_certificate_for_its_account(ca: CertificateAuthority) -> None:
    issued = ca.issue_service("f2-bridge")
    assert issued.key_path is not None
    cert = x509.load_pem_x509_certificate(issued.cert_path.read_bytes())
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["f2-bridge"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert stat.S_IMODE(issued.key_path.stat().st_mode) == 0o600
    assert issued.cert_path == ca.pki_dir / "services" / "f2-bridge.crt"
    if OPENSSL:
        done = subprocess.run(
            [OPENSSL, "verify", "-purpose", "sslclient", "-CAfile", str(ca.ca_cert_path), str(issued.cert_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        key_pub = subprocess.run(
            [OPENSSL, "pkey", "-in", str(issued.key_path), "-pubout"], capture_output=True, text=True, check=True
        ).stdout
        cert_pub = subprocess.run(
            [OPENSSL, "x509", "-in", str(issued.cert_path), "-pubkey", "-noout"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert key_pub == cert_pub, "the key is not the certificate's"
    rows = [row for row in ca.list_certs() if row.kind == "service"]
    assert [(row.common_name, row.serial) for row in rows] == [("f2-bridge", issued.serial)]


@pytest.mark.parametrize("name", ["aabbccddee01", "F2-Bridge", "f2/bridge", "f2+", "#", "", "-bridge", "x" * 64])
def test_a_name_a_device_could_claim_or_the_acl_cannot_hold_is_refused(ca: CertificateAuthority, name: str) -> None:
    with pytest.raises(InvalidSubjectError, match="service name"):
        ca.issue_service(name)
    assert not (ca.pki_dir / "services").exists()


def test_the_cli_issues_and_copies_the_files_for_a_secret(ca: CertificateAuthority, tmp_path: Path) -> None:
    out = tmp_path / "secret"
    context = {"pki_dir": ca.pki_dir, "registry_macs": None, "broker_user": None}
    result = CliRunner().invoke(certs_group, ["service", "f2-bridge", "--out", str(out)], obj=context)
    assert result.exit_code == 0, result.output
    assert "issued service certificate" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "f2-bridge.crt", "f2-bridge.key"]
    assert (out / "ca.crt").read_bytes() == ca.ca_cert_path.read_bytes()
    assert stat.S_IMODE((out / "f2-bridge.key").stat().st_mode) == 0o600
    listed = CliRunner().invoke(certs_group, ["list"], obj=context)
    assert listed.exit_code == 0 and "service" in listed.output and "f2-bridge" in listed.output
