"""The simulated phones: identities, columnar state, arrivals and the due-time scheduler.

Devices are rows, not objects (design.md): a shard's phones are numpy columns advanced by a scheduler that touches
only the phones whose event is due, and every per-phone value — identity, condition, arrival, random draw — is a
pure function of (scenario seed, global phone index), so results do not depend on how the population is sharded.

* :mod:`.identities` — carrier, MSISDN, condition, IMSI, IMEI, ICCID of phone ``i`` (:class:`NumberingPlan`);
* :mod:`.randomness` — the counter-based generator and keyed permutations everything above is drawn from;
* :mod:`.columns` — :class:`Population`, one shard's columns, per-phone draws and MSISDN lookup;
* :mod:`.arrivals` — the open model's arrival times and the closed model's concurrency;
* :mod:`.scheduler` — :class:`DueQueue` and the virtual and wall clocks.
"""

from carrier_sim.population.arrivals import (
    Arrivals,
    ConcurrencyProfile,
    RateProfile,
    arrival_probability,
    open_arrivals,
)
from carrier_sim.population.columns import NO_FLOW, STATE_IDLE, Population, shard_bounds
from carrier_sim.population.identities import (
    IMEI_PREFIX,
    NumberingPlan,
    PhoneCondition,
    PhoneIdentity,
    PopulationError,
    largest_remainder,
)
from carrier_sim.population.randomness import CounterRng, KeyedPermutation, Stream, inverse_normal_cdf, quantile
from carrier_sim.population.scheduler import Clock, DueQueue, VirtualClock, WallClock

__all__ = [
    "IMEI_PREFIX",
    "NO_FLOW",
    "STATE_IDLE",
    "Arrivals",
    "Clock",
    "ConcurrencyProfile",
    "CounterRng",
    "DueQueue",
    "KeyedPermutation",
    "NumberingPlan",
    "PhoneCondition",
    "PhoneIdentity",
    "Population",
    "PopulationError",
    "RateProfile",
    "Stream",
    "VirtualClock",
    "WallClock",
    "arrival_probability",
    "inverse_normal_cdf",
    "largest_remainder",
    "open_arrivals",
    "quantile",
    "shard_bounds",
]
