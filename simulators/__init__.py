"""The fleet simulator: smart poles, traffic signals and energy nodes publishing over MQTT.

Start with :func:`run_simulation` (see :mod:`simulators.runner`) and
:class:`Fleet` (see :mod:`simulators.fleet`); the manifest format is documented
in :mod:`simulators.manifest`.
"""

from simulators.cities import PILOT_CITIES, City, city_for
from simulators.errors import OptionsError, PublishError, SimulatorError
from simulators.faults import FaultRates
from simulators.fleet import Fleet
from simulators.manifest import DEAD_LETTER_REASONS, ChannelCounts, Manifest
from simulators.options import (
    SimulationOptions,
    TimeWindow,
    parse_duration,
    parse_instant,
    parse_speed,
    resolve_window,
)
from simulators.publisher import MemorySink, Publisher
from simulators.runner import Simulation, build_simulators, run_simulation
from simulators.sun import SunTimes, solar_elevation_deg, sun_times

__all__ = [
    "DEAD_LETTER_REASONS",
    "PILOT_CITIES",
    "ChannelCounts",
    "City",
    "FaultRates",
    "Fleet",
    "Manifest",
    "MemorySink",
    "OptionsError",
    "PublishError",
    "Publisher",
    "Simulation",
    "SimulationOptions",
    "SimulatorError",
    "SunTimes",
    "TimeWindow",
    "build_simulators",
    "city_for",
    "parse_duration",
    "parse_instant",
    "parse_speed",
    "resolve_window",
    "run_simulation",
    "solar_elevation_deg",
    "sun_times",
]
