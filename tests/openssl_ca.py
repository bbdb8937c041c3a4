"""A CA made outside the platform, with the `openssl` tool only, as another deployment would have made it: a root,
optionally an intermediate under it, and device certificates it issued. The platform's PKI code is never used."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl")

CA_EXTENSIONS = """basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""
ISSUED_CA_EXTENSIONS = CA_EXTENSIONS + "authorityKeyIdentifier = keyid:always\n"
DEVICE_EXTENSIONS = """basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None, "openssl is not on PATH"
    done = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"


def _config(folder: Path, name: str, common_name: str, extensions: str) -> Path:
    path = folder / f"{name}.cnf"
    path.write_text(f"[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {common_name}\n[ext]\n{extensions}")
    return path


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


class OpensslCA:
    """Files in `folder`: the root (and the intermediate) certificate and key, and what they issue."""

    def __init__(self, folder: Path, name: str = "Deployment", intermediate: bool = False, days: int = 3650) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.root = self._self_signed(f"{name} Root CA", "root", days)
        self.intermediate = (
            self._issued_ca(f"{name} Device CA", "intermediate", self.root, days) if intermediate else None
        )

    @property
    def issuing(self) -> Pair:
        """The CA that signs the devices' certificates: the one to adopt."""
        return self.intermediate or self.root

    @property
    def chain(self) -> list[Path]:
        """The issuing CA's issuers up to the root (empty for a root CA)."""
        return [self.root.cert] if self.intermediate else []

    def _key(self, name: str) -> Path:
        key = self.folder / f"{name}.key"
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key), cwd=self.folder)
        return key

    def _self_signed(self, common_name: str, name: str, days: int) -> Pair:
        key, cert = self._key(name), self.folder / f"{name}.crt"
        config = _config(self.folder, name, common_name, CA_EXTENSIONS)
        openssl(
            "req", "-x509", "-new", "-key", str(key), "-config", str(config), "-extensions", "ext",
            "-days", str(days), "-sha256", "-out", str(cert), cwd=self.folder,
        )  # fmt: skip
        return Pair(cert, key)

    def _sign(self, issuer: Pair, name: str, common_name: str, extensions: str, days: int) -> Pair:
        key, csr, cert = self._key(name), self.folder / f"{name}.csr", self.folder / f"{name}.crt"
        config = _config(self.folder, name, common_name, extensions)
        openssl("req", "-new", "-key", str(key), "-config", str(config), "-out", str(csr), cwd=self.folder)
        openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(issuer.cert), "-CAkey", str(issuer.key),
            "-CAcreateserial", "-days", str(days), "-sha256", "-extfile", str(config), "-extensions", "ext",
            "-out", str(cert), cwd=self.folder,
        )  # fmt: skip
        return Pair(cert, key)

    def _issued_ca(self, common_name: str, name: str, issuer: Pair, days: int) -> Pair:
        return self._sign(issuer, name, common_name, ISSUED_CA_EXTENSIONS, days)

    def issue_device(self, mac: str, days: int = 365) -> Pair:
        """A controller's client certificate (CN = MAC) from the issuing CA, with its own key."""
        return self._sign(self.issuing, f"device-{mac}", mac, DEVICE_EXTENSIONS, days)


def issue_client(issuer: Pair, common_name: str, folder: Path, days: int = 30) -> Pair:
    """A client certificate (clientAuth) with any CN, e.g. a service account's, signed by `issuer` with openssl
    (a random serial: nothing is written next to the issuer's files)."""
    folder.mkdir(parents=True, exist_ok=True)
    key, csr, cert = folder / f"{common_name}.key", folder / f"{common_name}.csr", folder / f"{common_name}.crt"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key), cwd=folder)
    config = _config(folder, common_name, common_name, DEVICE_EXTENSIONS)
    openssl("req", "-new", "-key", str(key), "-config", str(config), "-out", str(csr), cwd=folder)
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(issuer.cert), "-CAkey", str(issuer.key),
        "-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(days), "-sha256",
        "-extfile", str(config), "-extensions", "ext", "-out", str(cert), cwd=folder,
    )  # fmt: skip
    return Pair(cert, key)
