"""Fleets the simulator drives: the sample registry's, or N generated controllers of one shape (the simulator's
`--controllers N` and the bench's load, each under its own MAC prefix so neither drives the other's devices)."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.catalog import SAMPLE_CONTROLLERS, SAMPLE_WIRING, Wiring

SIMULATOR_MAC_PREFIX = "f2510000"
MAC_DIGITS = 12


@dataclass(frozen=True)
class Fleet:
    controllers: tuple[tuple[str, str], ...]  # (device name, MAC)
    wiring: tuple[Wiring, ...]
    # Components the controllers have and publish but the registry is not told about (never seeded): their
    # events are kept without a device id, and they give no readings.
    unregistered: tuple[Wiring, ...] = ()

    @property
    def macs(self) -> list[str]:
        return [mac for _, mac in self.controllers]


def sample_fleet() -> Fleet:
    return Fleet(SAMPLE_CONTROLLERS, SAMPLE_WIRING)


def generated_macs(n: int, mac_prefix: str = SIMULATOR_MAC_PREFIX) -> list[str]:
    """MACs 1..n after `mac_prefix`, the counter in the remaining hex digits."""
    width = MAC_DIGITS - len(mac_prefix)
    if width < 1 or n >= 16**width:
        raise ValueError(f"MAC prefix {mac_prefix!r} leaves {width} hex digits: too few for {n} controllers")
    return [f"{mac_prefix}{i:0{width}x}" for i in range(1, n + 1)]


def generated_fleet(n: int, mac_prefix: str = SIMULATOR_MAC_PREFIX, name: str = "Sim") -> Fleet:
    """N controllers, each with two ENV-S1 on J1, a DS-2 on J2, a PM-100 on J3 and a PS-1 on J4 (the frame
    sensors at position 1, the second ENV-S1 at 2), and the access and alarm components beside them: a reader
    (reader-2 on J2), a strike (strike-2 on J3), a siren (siren-2 on J4) and a motion sensor (motion-sensor-3
    on J1); devices named "<name> <i> Env A" and so on. Each controller's exit buttons (exit-buttons on J2)
    are not registered: position 1 of J2 holds the door sensors, so their events carry no device id."""
    controllers, wiring, unregistered = [], [], []
    for i, mac in enumerate(generated_macs(n, mac_prefix), start=1):
        controllers.append((f"{name} Controller {i}", mac))
        wiring += [
            Wiring(mac, 1, 1, f"{name} {i} Env A", "ENV-S1"),
            Wiring(mac, 1, 2, f"{name} {i} Env B", "ENV-S1"),
            Wiring(mac, 2, 1, f"{name} {i} Door", "DS-2"),
            Wiring(mac, 3, 1, f"{name} {i} Power", "PM-100"),
            Wiring(mac, 4, 1, f"{name} {i} Pressure", "PS-1"),
            Wiring(mac, 2, 2, f"{name} {i} Reader", "RD-1"),
            Wiring(mac, 3, 2, f"{name} {i} Strike", "SK-1"),
            Wiring(mac, 4, 2, f"{name} {i} Siren", "SR-1"),
            Wiring(mac, 1, 3, f"{name} {i} Motion", "MS-1"),
        ]
        unregistered.append(Wiring(mac, 2, 1, f"{name} {i} Exit", "EB-2"))
    return Fleet(tuple(controllers), tuple(wiring), tuple(unregistered))
