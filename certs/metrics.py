"""Certificate expiry as Prometheus metrics, read from the PKI at scrape time (served by `f2 certs serve`)."""

from __future__ import annotations

from collections.abc import Iterator

from cryptography import x509
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from certs.authority import CertificateAuthority

METRIC = "f2_certificate_expiry_timestamp_seconds"


class CertificateExpiryCollector(Collector):
    def __init__(self, ca: CertificateAuthority, daemon: str = "enroll") -> None:
        self.ca = ca
        self.daemon = daemon

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            METRIC,
            "When each live certificate expires, and when the CRL's next update is due (Unix seconds)",
            labels=["daemon", "kind", "subject"],
        )
        if self.ca.is_initialized:
            # An adopted intermediate CA's chain expires too: each certificate of ca.crt has its own series.
            for ca_cert in x509.load_pem_x509_certificates(self.ca.ca_cert_path.read_bytes()):
                family.add_metric(
                    [self.daemon, "ca", ca_cert.subject.rfc4514_string()], ca_cert.not_valid_after_utc.timestamp()
                )
            for info in self.ca.list_certs():
                if info.revoked or info.superseded or info.expired:
                    continue
                family.add_metric([self.daemon, info.kind, info.common_name], info.not_after.timestamp())
            next_update = self.ca.crl_next_update()
            if next_update is not None:
                family.add_metric([self.daemon, "crl", "crl.pem"], next_update.timestamp())
        yield family


def render(ca: CertificateAuthority) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CertificateExpiryCollector(ca))
    return generate_latest(registry)
