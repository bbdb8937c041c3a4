"""Compression and retention as assets that reconcile the database to f2_platform/timeseries/policy.py."""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
import dagster as dg

from f2_platform.defs.asset_keys import DECODED_DATA, READINGS_DAILY, READINGS_HOURLY
from f2_platform.defs.resources import TimescaleResource
from f2_platform.defs.storage_policy.compression import reconcile_compression
from f2_platform.defs.storage_policy.retention import apply_retention
from f2_platform.timeseries import storage_sql as s
from f2_platform.timeseries.policy import COMPRESSION, RETENTION, check_policies

GROUP = "storage_policy"


@dg.asset(
    deps=[DECODED_DATA],
    group_name=GROUP,
    kinds={"timescaledb"},
    description=(
        f"Compression of {COMPRESSION.hypertable}: after {COMPRESSION.compress_after.days} days, "
        f"segmented by {', '.join(COMPRESSION.segment_by)}, ordered by {COMPRESSION.order_by}. "
        "Reports drift from the policy; on the full edition applies it and compresses eligible chunks, "
        "on the Apache edition records why not."
    ),
)
def decoded_data_compression(context: dg.AssetExecutionContext, timescale: TimescaleResource) -> dg.MaterializeResult:
    with timescale.connect() as conn:
        report = reconcile_compression(conn, COMPRESSION)
    metadata: dict[str, object] = {
        "edition": report.edition.value,
        "compression_available": report.available,
        "drift": dg.MetadataValue.json([d.as_dict() for d in report.drift_before]),
        "drift_count": len(report.drift_before),
        "drift_after": dg.MetadataValue.json([d.as_dict() for d in report.drift_after]),
        "desired_policy": dg.MetadataValue.json(
            {
                "hypertable": COMPRESSION.hypertable,
                "compress_after_days": COMPRESSION.compress_after.days,
                "segment_by": list(COMPRESSION.segment_by),
                "order_by": COMPRESSION.order_by,
            }
        ),
    }
    if not report.available:
        context.log.warning(f"compression unavailable: {report.reason}")
        metadata["unavailable_reason"] = report.reason
    else:
        metadata.update(
            {
                "cutoff": dg.MetadataValue.timestamp(report.cutoff) if report.cutoff else "",
                "chunks_compressed": len(report.chunks_compressed),
                "bytes_before": report.bytes_before,
                "bytes_after": report.bytes_after,
                "compressed_chunks_total": report.compressed_chunks_total,
                "compressed_chunks_bytes_before": report.uncompressed_bytes_of_compressed,
                "compressed_chunks_bytes_after": report.compressed_bytes_of_compressed,
                "compression_ratio": report.ratio if report.ratio is not None else "",
            }
        )
    return dg.MaterializeResult(metadata=metadata)  # type: ignore[arg-type]


@dg.asset(
    deps=[DECODED_DATA, READINGS_HOURLY, READINGS_DAILY],
    group_name=GROUP,
    kinds={"timescaledb"},
    description="Retention: drops the chunks outside each window with drop_chunks: "
    + ", ".join(f"{p.hypertable} {p.keep.days} days" for p in RETENTION)
    + ". Aggregate windows whose readings are gone are never recomputed, so aggregates outlive them.",
)
def timeseries_retention(context: dg.AssetExecutionContext, timescale: TimescaleResource) -> dg.MaterializeResult:
    problems = check_policies()
    if problems:
        raise dg.Failure("the declared storage policy is inconsistent: " + "; ".join(problems))
    metadata: dict[str, object] = {}
    with timescale.connect() as conn:
        now = conn.execute(s.DB_NOW).fetchone()[0]  # type: ignore[index]
        # Raw readings first: when their chunks go, the aggregates that summarise them are already stored.
        for policy in RETENTION:
            report = apply_retention(conn, policy, now)
            prefix = policy.hypertable
            metadata[f"{prefix}/keep_days"] = policy.keep.days
            metadata[f"{prefix}/cutoff"] = dg.MetadataValue.timestamp(report.cutoff)
            metadata[f"{prefix}/chunks_dropped"] = len(report.dropped)
            metadata[f"{prefix}/chunks_kept"] = report.kept
            metadata[f"{prefix}/dropped"] = dg.MetadataValue.json(
                [
                    {
                        "chunk": c.name,
                        "range_start": c.range_start.isoformat(),
                        "range_end": c.range_end.isoformat(),
                    }
                    for c in report.dropped
                ]
            )
            if report.dropped:
                context.log.info(f"{prefix}: dropped {len(report.dropped)} chunk(s) ending before {report.cutoff}")
    return dg.MaterializeResult(metadata=metadata)  # type: ignore[arg-type]


STORAGE_POLICY_ASSETS = (decoded_data_compression, timeseries_retention)
