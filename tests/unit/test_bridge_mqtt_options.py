"""The bridge's MQTT options from its settings: clear or TLS (port, verification, hostname check, client
certificate), unusable TLS files refused naming the setting, and the Maximum Packet Size equal to the broker's
own limit (f2_platform/stack/service_config.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from f2_platform.stack.service_config import MOSQUITTO_BROKER
from streaming.bridge import session_options
from streaming.errors import ConfigurationError
from streaming.settings import BridgeSettings, ConnectionSettings
from tests.openssl_ca import OpensslCA, issue_client


def conn(**values: object) -> ConnectionSettings:
    return ConnectionSettings(mqtt_port=1883, mqtt_tls_port=8883, **values)  # type: ignore[arg-type]


def test_in_clear_by_default() -> None:
    options = session_options(conn(), BridgeSettings())
    assert options.port == 1883 and options.tls is None


def test_tls_verifies_the_broker_and_its_name_and_shows_the_client_certificate(tmp_path: Path) -> None:
    ca = OpensslCA(tmp_path / "ca")
    client = issue_client(ca.root, "f2-bridge", tmp_path / "client")
    options = session_options(
        conn(mqtt_tls=True, ca_cert=ca.root.cert, mqtt_tls_cert=client.cert, mqtt_tls_key=client.key),
        BridgeSettings(),
    )
    assert options.port == 8883
    context = options.tls
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert any("Deployment Root CA" in str(c.get("subject")) for c in context.get_ca_certs())


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"ca_cert": Path("/nonexistent/ca.crt")}, "F2_CA_CERT=/nonexistent/ca.crt"),
        ({"mqtt_tls_cert": Path("/nonexistent/c.crt")}, "F2_MQTT_TLS_CERT and F2_MQTT_TLS_KEY go together"),
        (
            {"mqtt_tls_cert": Path("/nonexistent/c.crt"), "mqtt_tls_key": Path("/nonexistent/c.key")},
            "F2_MQTT_TLS_CERT=/nonexistent/c.crt",
        ),
    ],
)
def test_unusable_tls_files_are_refused_naming_the_setting(values: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named.replace(".", r"\.")):
        session_options(conn(mqtt_tls=True, **values), BridgeSettings())


def test_the_maximum_packet_size_is_the_brokers_own_limit() -> None:
    broker = {d.name: d.value for d in MOSQUITTO_BROKER}
    assert session_options(conn(), BridgeSettings()).maximum_packet_size == broker["max_packet_size"]
