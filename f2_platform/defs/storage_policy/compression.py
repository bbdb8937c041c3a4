"""Reconciling decoded_data's compression with the declared policy (full edition only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from f2_platform.timeseries import storage_sql as s
from f2_platform.timeseries.edition import APACHE_LIMITATION, Edition, detect_edition
from f2_platform.timeseries.policy import CompressionPolicy


@dataclass
class CompressionReport:
    edition: Edition
    available: bool
    drift_before: list[s.Drift]
    drift_after: list[s.Drift] = field(default_factory=list)
    reason: str = ""
    cutoff: datetime | None = None
    chunks_compressed: list[str] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0
    compressed_chunks_total: int = 0
    uncompressed_bytes_of_compressed: int = 0
    compressed_bytes_of_compressed: int = 0

    @property
    def ratio(self) -> float | None:
        """How many times smaller the compressed chunks are than they were before compression."""
        if not self.compressed_bytes_of_compressed:
            return None
        return round(self.uncompressed_bytes_of_compressed / self.compressed_bytes_of_compressed, 3)


def _actual_settings(conn: psycopg.Connection, policy: CompressionPolicy) -> tuple[bool, str | None, str | None]:
    params = {"name": policy.hypertable}
    enabled_row = conn.execute(s.COMPRESSION_ENABLED, params).fetchone()
    enabled = bool(enabled_row and enabled_row[0])
    settings = conn.execute(s.COMPRESSION_SETTINGS, params).fetchone()
    return enabled, (settings[0] if settings else None), (settings[1] if settings else None)


def reconcile_compression(conn: psycopg.Connection, policy: CompressionPolicy) -> CompressionReport:
    """Drift before, then (full edition) apply the settings, compress eligible chunks, drift after."""
    edition = detect_edition(conn)
    drift = s.compression_drift(policy, *_actual_settings(conn, policy))
    if not edition.has_compression:
        # Reported, not failed: the Apache edition cannot compress, and that is a known, stable state.
        return CompressionReport(edition, False, drift, drift, reason=APACHE_LIMITATION)
    report = CompressionReport(edition, True, drift)
    params: dict[str, object] = {"name": policy.hypertable}
    if drift:
        conn.execute(s.enable_compression(policy))
    report.bytes_before = int(conn.execute(s.HYPERTABLE_BYTES, params).fetchone()[0] or 0)  # type: ignore[index]
    now = conn.execute(s.DB_NOW).fetchone()[0]  # type: ignore[index]
    report.cutoff = now - policy.compress_after
    params["cutoff"] = report.cutoff
    for (chunk,) in conn.execute(s.COMPRESSIBLE_CHUNKS, params).fetchall():
        # One chunk per statement (autocommit): each compression commits on its own and a failure
        # leaves the chunks before it compressed.
        conn.execute(s.COMPRESS_CHUNK, {"chunk": chunk})
        report.chunks_compressed.append(str(chunk))
    report.bytes_after = int(conn.execute(s.HYPERTABLE_BYTES, params).fetchone()[0] or 0)  # type: ignore[index]
    before, after, chunks = conn.execute(s.COMPRESSION_STATS, params).fetchone()  # type: ignore[misc]
    report.uncompressed_bytes_of_compressed, report.compressed_bytes_of_compressed = int(before), int(after)
    report.compressed_chunks_total = int(chunks)
    report.drift_after = s.compression_drift(policy, *_actual_settings(conn, policy))
    return report
