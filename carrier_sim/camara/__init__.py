"""CAMARA network APIs of the emulated carriers: SIM Swap, Number Verification, Number Recycling and Device
Reachability Status, over HTTP (aiohttp), answering from :class:`SubscriberRecords` that the scenario mutates.

See ``docs/camara.md``.
"""

from carrier_sim.camara.access import Grant
from carrier_sim.camara.app import Clock, camara_app
from carrier_sim.camara.errors import CamaraError
from carrier_sim.camara.faults import Faults
from carrier_sim.camara.registry import Connectivity, SubscriberRecords, Subscription, UnknownNumber

__all__ = [
    "CamaraError",
    "Clock",
    "Connectivity",
    "Faults",
    "Grant",
    "SubscriberRecords",
    "Subscription",
    "UnknownNumber",
    "camara_app",
]
