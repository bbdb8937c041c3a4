"""Exception root of the streaming package.

Every error a daemon raises derives from `StreamingError`. Two markers decide what the run loop does:
`TransientError` (retry with backoff, never skip the record) and `DecodeError` (terminal for the
record: it goes to the dead-letter topic with its reason class and the stream moves on).
"""

from __future__ import annotations

from typing import Final

# Reason classes from docs/domain.md, in the order it lists them. They appear in the `f2.reason` header.
REASONS: Final[tuple[str, ...]] = (
    "bad-topic",
    "malformed-payload",
    "missing-timestamp",
    "bad-timestamp",
    "bad-hex",
    "frame-length",
    "crc",
    "unknown-controller",
    "unknown-connector",
    "unwired-position",
    "payload-too-large",
)


class StreamingError(Exception):
    """Root of every error raised by the streaming package."""


class TransientError(StreamingError):
    """A dependency is unavailable for now (database, Kafka, Redis): retry, never drop the record."""


class ConfigurationError(StreamingError):
    """Settings or registry content make it impossible to run; the operator must fix them."""


class DecodeError(StreamingError):
    """A record that can never be decoded as it is: dead-letter it with `reason` and `detail`."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown dead-letter reason {reason!r}; expected one of {', '.join(REASONS)}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class MqttProtocolError(StreamingError):
    """The MQTT broker sent a malformed or unexpected packet: the connection is dropped and made anew."""


class MqttRefusedError(ConfigurationError):
    """The MQTT broker refused the bridge's credentials, identity or subscription, or its certificate failed
    verification: retrying cannot help until the operator fixes the setting the message names."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # short label for the metric: "bad-credentials", "not-authorized", "tls", ...
