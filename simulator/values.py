"""Pure value models for the simulator: daily curves plus noise, quantised as the device would send them."""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass, field

from simulator.catalog import Template

DAY_S = 86400.0

# label -> (base, daily amplitude, noise sigma, phase in hours of the daily peak)
CURVES: dict[str, tuple[float, float, float, float]] = {
    "Temperature": (21.0, 3.0, 0.2, 15.0),
    "Humidity": (45.0, 8.0, 0.5, 5.0),
    "CO2": (650.0, 250.0, 20.0, 18.0),
    "Voltage": (230.0, 2.5, 0.4, 19.0),
    "Current": (4.0, 3.0, 0.3, 19.0),
    "Pressure": (1013.0, 4.0, 0.3, 10.0),
    "Probe Temperature": (62.0, 6.0, 0.8, 7.0),
    "Battery": (88.0, 0.0, 0.0, 0.0),
}


def quantise(value: float, decimals: int) -> float:
    """What the decoder will read back: the integer the device sends, divided by 10^decimals."""
    scale = 10**decimals
    return round(value * scale) / scale


@dataclass
class SensorModel:
    template: Template
    rng: random.Random
    energy_kwh: float = field(default=0.0)

    def values(self, t_s: float) -> dict[str, float]:
        """Every frame datapoint's value at Unix time t_s as the decoder must read it back: quantised to its
        decimals, Float32 at single precision."""
        hour = (t_s % DAY_S) / 3600.0
        out: dict[str, float] = {}
        for dp in self.template.datapoints:
            if dp.encoding == "Bool":
                continue
            base, amp, sigma, peak = CURVES.get(dp.label, (50.0, 10.0, 1.0, 12.0))
            value = base + amp * math.cos(2 * math.pi * (hour - peak) / 24.0) + self.rng.gauss(0.0, sigma)
            out[dp.label] = value
        if "Power" in out or "Energy" in out:
            power = out.get("Voltage", 230.0) * out.get("Current", 4.0)
            out["Power"] = power
            self.energy_kwh += max(power, 0.0) * 30.0 / 3_600_000.0
            out["Energy"] = 1000.0 + self.energy_kwh
        for dp in self.template.datapoints:
            if dp.label not in out:
                continue
            if dp.encoding == "Float32":
                # Float32 carries its own precision: round the way the encoder's single precision will.
                out[dp.label] = struct.unpack(">f", struct.pack(">f", out[dp.label]))[0]
            else:
                out[dp.label] = quantise(out[dp.label], dp.decimals)
        return out
