"""Fleet generation: the registry rows (:class:`schemas.registry.Device`) of a simulated city.

``Fleet.generate("jinan", poles=2000, signals=400, energy=40, seed=7)`` always yields
the same devices for the same arguments. Ids are ``jinan-pole-00001``,
``jinan-sig-0001``, ``jinan-en-001``; ``write_csv`` writes a file that
``citytel devices import`` accepts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.registry import Device, PoleFunction, SiteType, write_devices_csv
from schemas.topics import Kind
from simulators.cities import City, city_for

# Share of poles that carry each function besides lighting.
_POLE_FUNCTION_SHARE = {
    PoleFunction.ENVIRONMENT: 0.3,
    PoleFunction.SMALL_CELL: 0.4,
    PoleFunction.CAMERA: 0.5,
    PoleFunction.DISPLAY: 0.1,
    PoleFunction.EV_CHARGER: 0.05,
    PoleFunction.SOS: 0.1,
}
_SITE_WEIGHTS = {
    SiteType.INDUSTRIAL_PARK: 0.25,
    SiteType.PUBLIC_BUILDING: 0.3,
    SiteType.COMMERCIAL: 0.25,
    SiteType.RESIDENTIAL: 0.2,
}
_PV_RANGE_KW = {
    SiteType.INDUSTRIAL_PARK: (200.0, 1000.0),
    SiteType.PUBLIC_BUILDING: (50.0, 200.0),
    SiteType.COMMERCIAL: (100.0, 400.0),
    SiteType.RESIDENTIAL: (30.0, 150.0),
}
ARTERIAL_SHARE = 0.3
_SPREAD_DEG = 0.12
_INSTALL_FROM = datetime(2019, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Fleet:
    """The devices of one simulated city, in id order: poles, signals, energy nodes."""

    city: City
    seed: int
    devices: tuple[Device, ...]

    @classmethod
    def generate(
        cls,
        city: str,
        poles: int,
        signals: int,
        energy: int,
        seed: int,
        *,
        interval_s: float = 10.0,
    ) -> Fleet:
        where = city_for(city)
        rng = random.Random(f"{seed}:{city}:fleet")
        devices = [_pole(where, n, rng, interval_s) for n in range(1, poles + 1)]
        devices += [_signal(where, n, rng, interval_s) for n in range(1, signals + 1)]
        devices += [_energy_node(where, n, rng, interval_s) for n in range(1, energy + 1)]
        return cls(where, seed, tuple(devices))

    def of_kind(self, kind: Kind) -> list[Device]:
        return [d for d in self.devices if d.kind is kind]

    def to_csv(self) -> str:
        return write_devices_csv(self.devices)

    def write_csv(self, path: Path) -> None:
        path.write_text(self.to_csv(), encoding="utf-8")


def _common(city: City, kind: Kind, device_id: str, rng: random.Random, interval_s: float) -> dict:
    return {
        "device_id": device_id,
        "kind": kind,
        "city": city.name,
        "district": rng.choice(city.districts),
        "lat": round(city.lat + rng.uniform(-_SPREAD_DEG, _SPREAD_DEG), 6),
        "lon": round(city.lon + rng.uniform(-_SPREAD_DEG, _SPREAD_DEG), 6),
        "interval_s": interval_s,
        "installed_at": _INSTALL_FROM + timedelta(days=rng.randrange(5 * 365)),
    }


def _pole(city: City, n: int, rng: random.Random, interval_s: float) -> Device:
    common = _common(city, Kind.POLE, f"{city.name}-pole-{n:05d}", rng, interval_s)
    functions = [PoleFunction.LIGHTING]
    functions += [f for f, share in _POLE_FUNCTION_SHARE.items() if rng.random() < share]
    street = rng.choice(city.streets)
    return Device(**common, name=f"{street} pole {n}", functions=functions)


def _signal(city: City, n: int, rng: random.Random, interval_s: float) -> Device:
    common = _common(city, Kind.SIGNAL, f"{city.name}-sig-{n:04d}", rng, interval_s)
    main, cross = rng.sample(city.streets, 2)
    intersection = f"{main} & {cross}"
    return Device(
        **common,
        name=f"Signal {intersection}",
        intersection=intersection,
        arterial=rng.random() < ARTERIAL_SHARE,
    )


def _energy_node(city: City, n: int, rng: random.Random, interval_s: float) -> Device:
    common = _common(city, Kind.ENERGY, f"{city.name}-en-{n:03d}", rng, interval_s)
    site = rng.choices(list(_SITE_WEIGHTS), weights=list(_SITE_WEIGHTS.values()))[0]
    low, high = _PV_RANGE_KW[site]
    pv_kw = round(rng.uniform(low, high), 1)
    storage_kwh = round(pv_kw * rng.uniform(1.0, 2.0), 1) if rng.random() < 0.7 else 0.0
    return Device(
        **common,
        name=f"{site.value.replace('_', ' ')} {n}",
        site_type=site,
        pv_capacity_kw=pv_kw,
        storage_capacity_kwh=storage_kwh,
    )
