"""What the checks need to know from the registry ("VtDevice"): the wired devices and their datapoints.

The registry may live in another database than the readings, so it is read on its own and joined in
Python; the time-series queries receive the registry facts they need as arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

FetchAll = Callable[[str, Mapping[str, Any]], list[dict[str, Any]]]

# Wired devices only: readings belong to the wired device (docs/domain.md); a device on no pin cannot report.
DEVICES_SQL = """
SELECT d.deviceid AS device_id, d.devicename AS device_name, t.devicetemplateid AS template_id,
       t.name AS template_name, t.expected_interval_s, c.macaddress AS controller_mac,
       con.connectornumber AS connector, p.position
FROM "VtDevice".pins p
JOIN "VtDevice".devices d ON d.deviceid = p.deviceid
JOIN "VtDevice".devicetemplates t ON t.devicetemplateid = d.devicetemplateid
JOIN "VtDevice".connectors con ON con.connectorid = p.connectorid
JOIN "VtDevice".devices c ON c.deviceid = con.controllerid
WHERE (%(macs)s::text[] IS NULL OR c.macaddress = ANY(%(macs)s::text[]))
ORDER BY c.macaddress, con.connectornumber, p.position
"""

DATAPOINTS_SQL = """
SELECT p.datapointid AS datapoint_id, p.devicetemplateid AS template_id, p.label, p.dataencoding AS encoding,
       p.decimals, btrim(coalesce(p.append, '')) AS unit, p.min_value, p.max_value
FROM "VtDevice".datapoints p
WHERE p.devicetemplateid = ANY(%(templates)s::int[])
ORDER BY p.devicetemplateid, p.datapointid
"""

DEVICE_COLUMNS = [
    "device_id",
    "device_name",
    "template_id",
    "template_name",
    "expected_interval_s",
    "controller_mac",
    "connector",
    "position",
]
DATAPOINT_COLUMNS = ["datapoint_id", "template_id", "label", "encoding", "decimals", "unit", "min_value", "max_value"]


@dataclass(frozen=True)
class Fleet:
    """Wired devices (one row each) and the datapoints of their templates."""

    devices: pd.DataFrame
    datapoints: pd.DataFrame
    controllers: tuple[str, ...] | None = None  # the scope: None means every controller

    @property
    def device_ids(self) -> list[int]:
        return [int(d) for d in self.devices["device_id"]]

    def cadenced(self) -> pd.DataFrame:
        """Devices whose template reports periodically (has an expected interval): the ones that can be
        late, incomplete or silent. Status devices report on change and are left out."""
        frame = self.devices[self.devices["expected_interval_s"].notna()].copy()
        frame["expected_interval_s"] = frame["expected_interval_s"].astype("int64")
        return frame.reset_index(drop=True)

    def series(self) -> pd.DataFrame:
        """Every (device, datapoint) the fleet can report, with the datapoint's facts."""
        return self.devices.merge(self.datapoints, on="template_id", how="inner")

    def ranged_series(self) -> pd.DataFrame:
        series = self.series()
        return series[series["min_value"].notna() | series["max_value"].notna()].reset_index(drop=True)

    def stuck_candidates(self, exempt_labels: Iterable[str]) -> pd.DataFrame:
        """Numeric series of periodic devices; Bool status fields and exempt labels legitimately stay flat."""
        series = self.series()
        exempt = set(exempt_labels)
        keep = series["expected_interval_s"].notna() & (series["encoding"] != "Bool") & ~series["label"].isin(exempt)
        return series[keep].reset_index(drop=True)

    def device_names(self) -> dict[int, str]:
        return {int(r.device_id): str(r.device_name) for r in self.devices.itertuples()}


def load_fleet(fetch_all: FetchAll, controllers: Sequence[str] | None = None) -> Fleet:
    """The fleet (or the part wired to `controllers`, given as MACs) from the registry."""
    macs = sorted({m.lower() for m in controllers}) if controllers else None
    devices = pd.DataFrame(fetch_all(DEVICES_SQL, {"macs": macs}), columns=DEVICE_COLUMNS)
    templates = sorted({int(t) for t in devices["template_id"]})
    datapoints = pd.DataFrame(fetch_all(DATAPOINTS_SQL, {"templates": templates}), columns=DATAPOINT_COLUMNS)
    devices = devices.astype({"device_id": "int64", "template_id": "int64"})
    devices["expected_interval_s"] = pd.to_numeric(devices["expected_interval_s"]).astype("float64")
    datapoints = datapoints.astype({"datapoint_id": "int64", "template_id": "int64"})
    for column in ("min_value", "max_value"):
        datapoints[column] = pd.to_numeric(datapoints[column]).astype("float64")
    return Fleet(devices, datapoints, tuple(macs) if macs else None)
