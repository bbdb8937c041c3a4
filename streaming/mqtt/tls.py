"""The TLS side of the bridge's MQTT connection: a client context that verifies the broker.

The broker's certificate must chain to the CA file given (or to the system's trusted CAs when none is) and name
the host the bridge connects to. A client certificate and key are optional: Mosquitto's device listener
requires one (its CN is the username the ACL applies to), a listener with passwords does not.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from streaming.errors import ConfigurationError


def client_context(ca_file: Path | None, cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext:
    """A TLS 1.2+ client context; ConfigurationError naming the setting when a file is missing or unusable."""
    if (cert_file is None) != (key_file is None):
        raise ConfigurationError(
            "F2_MQTT_TLS_CERT and F2_MQTT_TLS_KEY go together: set both (the bridge's client certificate and its "
            "private key, PEM) or neither"
        )
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # as the broker's listeners (service_config)
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"F2_CA_CERT={ca_file}: cannot load the CA certificate that verifies the MQTT broker ({exc}); "
                "point it at the platform CA's PEM file (the local stack's is $F2_STATE_DIR/pki/ca.crt)"
            ) from exc
    if cert_file is not None and key_file is not None:
        try:
            context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"F2_MQTT_TLS_CERT={cert_file}, F2_MQTT_TLS_KEY={key_file}: cannot load the bridge's client "
                f"certificate and key ({exc}); both must be PEM files and the key must match the certificate"
            ) from exc
    return context
