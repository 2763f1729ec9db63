"""Who phone ``i`` is: its carrier, MSISDN, subscriber condition, IMSI, IMEI and ICCID — pure functions of the
scenario and the global phone index, the same in every shard.

Theory of operation
-------------------
Exact shares, spread evenly, invertible. The population is ``N`` phones with global indices ``0..N-1``.

* **Carrier and MSISDN.** The carriers' quotas come from ``population.mix`` by largest remainder, so they sum to
  exactly ``N``. A keyed permutation π (see :class:`~carrier_sim.population.randomness.KeyedPermutation`) shuffles
  the indices; carrier ``c`` owns the contiguous block ``[start_c, start_c + quota_c)`` of π-space, and phone
  ``i`` with ``π(i) = start_c + r`` has the ``r``-th number of carrier ``c``'s ranges (ranges in the order the
  scenario lists them). The permutation spreads every carrier over every shard (contiguous blocks of *indices*
  would give shard 0 one carrier and shard 2 another), and because it is a bijection the map inverts exactly:
  MSISDN → (range, offset) → (carrier, r) → π⁻¹(start_c + r), with no table, from any process.
* **Condition.** A second, independent permutation ρ: the first round(N·absent) of ρ-space are absent, then
  barred, then roaming, the rest reachable — exact totals, no correlation with carrier or MSISDN.
* **IMSI** = MCC + MNC + MSIN, 15 digits. The MSIN is ``9`` + SIM generation digit + the global index, zero-padded:
  obviously a test subscriber, unique across the scenario even if two carriers share an MCC/MNC, and a SIM swap
  (generation + 1) gets a new IMSI as it would on a real network. One digit holds generations 0..9, so a phone
  can be swapped at most 9 times: a tenth generation is refused (:class:`PopulationError`) rather than wrapped to
  the first SIM's IMSI and ICCID, which would hand a swapped phone its old identity back.
* **IMEI** = TAC + serial + Luhn digit (3GPP TS 23.003 §6.2.1). The TAC starts with reporting body identifier
  ``00``, which GSMA TS.06 leaves to test equipment, so no real handset model can match: ``0099`` + the index in
  10 digits + Luhn.
* **ICCID** (ITU-T E.118): ``89`` (telecom) + the country calling code of the carrier's country + the MNC as issuer
  + an account number (``9`` + SIM generation + index) to 18 digits + Luhn: 19 digits.

Columns (carrier, MSISDN, condition) are computed vectorised over index arrays; the string identities are built
one phone at a time on request (``imei_of(i)``), never a million strings up front.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, overload

import numpy as np
import phonenumbers
from numpy.typing import ArrayLike, NDArray
from stdnum import luhn

from carrier_sim.population.randomness import KeyedPermutation
from carrier_sim.scenario import model

__all__ = [
    "CARRIER_DTYPE",
    "IMEI_PREFIX",
    "MAX_CARRIERS",
    "SIM_GENERATIONS",
    "NumberingPlan",
    "PhoneCondition",
    "PhoneIdentity",
    "PopulationError",
    "carrier_weights",
    "largest_remainder",
]

#: Reporting body identifier 00 (test IMEIs, GSMA TS.06) + a fixed "99" so the TAC is recognisably ours.
IMEI_PREFIX = "0099"
_IMEI_SERIAL_DIGITS = 15 - 1 - len(IMEI_PREFIX)
_ICCID_BODY_DIGITS = 18  # + 1 Luhn digit = 19, the common length on issued SIMs

#: dtype of the ``carrier`` column (a position in ``scenario.carriers``). int8 held only 127 carriers: carrier 128
#: wrapped to -128, and Python's negative indexing then routed its phones through carrier 2 with the wrong IMSI.
CARRIER_DTYPE = np.int16
#: Carriers the column can number (positions 0..32767); a plan refuses more rather than wrap.
MAX_CARRIERS = int(np.iinfo(CARRIER_DTYPE).max) + 1

#: SIM generations (0 for the first SIM, +1 per swap) the one generation digit of the IMSI and ICCID tells apart.
SIM_GENERATIONS = 10

# Purposes of the plan's permutations (part of the reproducibility contract: never renumber).
_PERMUTE_CARRIER = 1
_PERMUTE_CONDITION = 2


class PopulationError(ValueError):
    """The scenario's population cannot be laid out (a range too small, overlapping ranges, an unknown carrier in
    the mix, shares over 1, too many phones for the identity formats)."""


class PhoneCondition(IntEnum):
    """A phone's subscriber condition as stored in the int8 ``condition`` column."""

    REACHABLE = 0
    ABSENT = 1
    BARRED = 2
    ROAMING = 3


@dataclass(frozen=True, slots=True)
class PhoneIdentity:
    """One phone's identities as strings, built on request (for logs, HTTP bodies, the dashboard)."""

    index: int
    carrier: str
    msisdn: str
    imsi: str
    imei: str
    iccid: str
    condition: PhoneCondition


def largest_remainder(total: int, weights: Sequence[float]) -> NDArray[np.int64]:
    """Split ``total`` into integer parts proportional to ``weights`` that sum to exactly ``total`` (Hamilton's
    method; ties go to the earlier weight, so the split is deterministic)."""
    w = np.asarray(weights, dtype=np.float64)
    s = float(w.sum())
    if w.size == 0 or s <= 0 or bool((w < 0).any()):
        raise PopulationError("shares must be non-negative with a positive sum")
    exact = w / s * total
    parts = np.floor(exact).astype(np.int64)
    short = total - int(parts.sum())
    if short:
        # stable sort on the negated remainder: biggest remainder first, earlier weight first among equals
        order = np.argsort(-(exact - parts), kind="stable")
        parts[order[:short]] += 1
    return parts


def carrier_weights(names: Sequence[str], mix: Mapping[str, float]) -> list[float]:
    """Each carrier's weight for :func:`largest_remainder`, in the declared order ``names``: its mix share (0 if
    the mix leaves it out), or 1 each when there is no mix. The plan's split (``carrier-sim plan``) and the run's
    must both come from here, in this order: ties go to the earlier weight, so another order moves phones."""
    # A scenario without a mix spreads its phones evenly: the obvious default, and it keeps small test
    # scenarios short.
    return [mix.get(n, 0.0) for n in names] if mix else [1.0] * len(names)


class NumberingPlan:
    """The scenario's phones as identities: everything here is a pure function of (scenario, phone index).

    Build it once per process with :meth:`from_scenario`; every shard builds the same plan.
    """

    def __init__(self, carriers: Sequence[model.Carrier], population: model.Population, seed: int) -> None:
        self.carriers = tuple(carriers)
        self.size = int(population.phones)
        self.seed = seed
        if self.size < 0:
            raise PopulationError("population.phones cannot be negative")
        if not self.carriers:
            raise PopulationError("a population needs at least one carrier")
        if len(self.carriers) > MAX_CARRIERS:
            raise PopulationError(
                f"{len(self.carriers)} carriers: at most {MAX_CARRIERS} fit the {np.dtype(CARRIER_DTYPE).name} "
                "carrier column"
            )
        names = [c.name for c in self.carriers]
        unknown = sorted(set(population.mix) - set(names))
        if unknown:
            raise PopulationError(f"population.mix names carriers the scenario does not declare: {unknown}")
        self.quotas = largest_remainder(self.size, carrier_weights(names, population.mix))
        self._block_start = np.concatenate(([0], np.cumsum(self.quotas)[:-1])).astype(np.int64)

        shares = (population.absent, population.barred, population.roaming)
        if any(s < 0 for s in shares) or sum(shares) > 1.0 + 1e-12:
            raise PopulationError("absent + barred + roaming shares must be non-negative and at most 1")
        reachable = max(0.0, 1.0 - sum(shares))
        parts = largest_remainder(self.size, [*shares, reachable]) if self.size else np.zeros(4, np.int64)
        #: ρ-space block edges: [0, absent) absent, [absent, +barred) barred, [.., +roaming) roaming, rest reachable.
        self._condition_edges = np.cumsum(parts[:3]).astype(np.int64)
        self.condition_quotas = {
            PhoneCondition.ABSENT: int(parts[0]),
            PhoneCondition.BARRED: int(parts[1]),
            PhoneCondition.ROAMING: int(parts[2]),
            PhoneCondition.REACHABLE: int(parts[3]),
        }

        self._carrier_perm = KeyedPermutation(self.size, seed, _PERMUTE_CARRIER)
        self._condition_perm = KeyedPermutation(self.size, seed, _PERMUTE_CONDITION)
        self._layout_ranges()
        self._check_identity_capacity()

    @classmethod
    def from_scenario(cls, scenario: model.Scenario) -> NumberingPlan:
        """The plan of a scenario's carriers and population under its seed."""
        return cls(scenario.carriers, scenario.population, scenario.seed)

    # -- layout -------------------------------------------------------------------------------------------------

    def _layout_ranges(self) -> None:
        """Flatten every carrier's ranges into one "position space" (carrier 0's ranges, then carrier 1's...), and
        index the same ranges by their first number for the reverse lookup."""
        firsts: list[int] = []
        lasts: list[int] = []
        owners: list[int] = []
        for c, carrier in enumerate(self.carriers):
            capacity = 0
            for rng in carrier.ranges:
                if rng.last < rng.first or rng.first < 0:
                    raise PopulationError(f"carrier {carrier.name!r}: range {rng.first}..{rng.last} is empty")
                firsts.append(rng.first)
                lasts.append(rng.last)
                owners.append(c)
                capacity += rng.size
            if capacity < int(self.quotas[c]):
                raise PopulationError(
                    f"carrier {carrier.name!r} gets {int(self.quotas[c])} phones but its ranges hold only "
                    f"{capacity} numbers"
                )
        self._range_first = np.asarray(firsts, dtype=np.int64)
        self._range_last = np.asarray(lasts, dtype=np.int64)
        self._range_owner = np.asarray(owners, dtype=np.int64)
        sizes = self._range_last - self._range_first + 1
        #: position (in the flattened space) of each range's first number
        self._range_pos = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        # position of each carrier's first number: where its first range starts
        self._carrier_pos = np.zeros(len(self.carriers), dtype=np.int64)
        seen: set[int] = set()
        for k, c in enumerate(owners):
            if c not in seen:
                self._carrier_pos[c] = self._range_pos[k]
                seen.add(c)

        order = np.argsort(self._range_first, kind="stable")
        self._sorted_first = self._range_first[order]
        self._sorted_range = order.astype(np.int64)
        sorted_last = self._range_last[order]
        clash = np.flatnonzero(self._sorted_first[1:] <= sorted_last[:-1])
        if clash.size:
            a, b = order[clash[0]], order[clash[0] + 1]
            raise PopulationError(
                f"number ranges overlap: {firsts[a]}..{lasts[a]} ({self.carriers[owners[a]].name}) and "
                f"{firsts[b]}..{lasts[b]} ({self.carriers[owners[b]].name})"
            )

    def _check_identity_capacity(self) -> None:
        """Fail at build time, not halfway through a run, if the index does not fit an identity's digits."""
        if self.size == 0:
            return
        widest = len(str(self.size - 1))
        for carrier in self.carriers:
            if not (carrier.mcc.isdigit() and len(carrier.mcc) == 3 and carrier.mnc.isdigit()
                    and len(carrier.mnc) in (2, 3)):
                raise PopulationError(f"carrier {carrier.name!r}: MCC must be 3 digits and MNC 2 or 3")
            if widest > self._msin_index_digits(carrier):
                raise PopulationError(f"carrier {carrier.name!r}: {self.size} phones do not fit its IMSI format")
            if widest > self._iccid_index_digits(carrier):
                raise PopulationError(f"carrier {carrier.name!r}: {self.size} phones do not fit its ICCID format")
        if widest > _IMEI_SERIAL_DIGITS:
            raise PopulationError(f"{self.size} phones do not fit the IMEI format")

    # -- columns (vectorised) -----------------------------------------------------------------------------------

    def _check_index(self, index: ArrayLike) -> NDArray[np.int64]:
        idx = np.asarray(index, dtype=np.int64)
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= self.size):
            raise IndexError(f"phone indices must lie in [0, {self.size})")
        return idx

    def assign(self, index: ArrayLike) -> tuple[NDArray[np.int16], NDArray[np.int64]]:
        """(carrier, msisdn) of each phone in ``index``: one permutation pass serves both columns."""
        idx = self._check_index(index)
        slot = self._carrier_perm.forward(idx)
        carrier = np.searchsorted(self._block_start, slot, side="right") - 1
        # Zero-quota carriers have empty blocks that share their start with the next carrier; searchsorted with
        # side="right" lands on the last of them, which is the one that owns the slot.
        rank = slot - self._block_start[carrier]
        pos = self._carrier_pos[carrier] + rank
        rng = np.searchsorted(self._range_pos, pos, side="right") - 1
        msisdn = self._range_first[rng] + (pos - self._range_pos[rng])
        return carrier.astype(CARRIER_DTYPE), msisdn.astype(np.int64)

    def carrier_of(self, index: ArrayLike) -> NDArray[np.int16]:
        """The carrier (position in ``scenario.carriers``) of each phone."""
        return self.assign(index)[0]

    def msisdn_of(self, index: ArrayLike) -> NDArray[np.int64]:
        """The MSISDN (international digits as an integer) of each phone."""
        return self.assign(index)[1]

    def condition_of(self, index: ArrayLike) -> NDArray[np.int8]:
        """The :class:`PhoneCondition` code of each phone."""
        idx = self._check_index(index)
        slot = self._condition_perm.forward(idx)
        # edges are [absent_end, barred_end, roaming_end]; block 3 (past the last edge) is reachable
        block = np.searchsorted(self._condition_edges, slot, side="right")
        codes = np.array(
            [PhoneCondition.ABSENT, PhoneCondition.BARRED, PhoneCondition.ROAMING, PhoneCondition.REACHABLE],
            dtype=np.int8,
        )
        return codes[block]

    @overload
    def index_of_msisdn(self, msisdn: int) -> int: ...
    @overload
    def index_of_msisdn(self, msisdn: NDArray[np.integer[Any]] | Sequence[int]) -> NDArray[np.int64]: ...
    def index_of_msisdn(self, msisdn: int | NDArray[np.integer[Any]] | Sequence[int]) -> int | NDArray[np.int64]:
        """The global index of the phone that has each MSISDN, or -1 where no phone of the scenario has it (outside
        every range, or a number of a range beyond its carrier's quota). Analytic: no table, any process."""
        m = np.atleast_1d(np.asarray(msisdn, dtype=np.int64))
        out = np.full(m.shape, -1, dtype=np.int64)
        k = np.searchsorted(self._sorted_first, m, side="right") - 1
        inside = k >= 0
        rng = np.where(inside, self._sorted_range[np.maximum(k, 0)], 0)
        inside &= m <= self._range_last[rng]
        carrier = self._range_owner[rng]
        rank = self._range_pos[rng] + (m - self._range_first[rng]) - self._carrier_pos[carrier]
        inside &= rank < self.quotas[carrier]
        hit = np.flatnonzero(inside)
        if hit.size:
            out[hit] = self._carrier_perm.inverse(self._block_start[carrier[hit]] + rank[hit])
        return int(out[0]) if np.ndim(msisdn) == 0 else out

    # -- identities as strings (one phone at a time) -------------------------------------------------------------

    @staticmethod
    def _generation_digit(sim: int) -> str:
        # Refuse rather than wrap (sim % 10): generation 10 would reuse generation 0's IMSI and ICCID.
        if not 0 <= sim < SIM_GENERATIONS:
            raise PopulationError(
                f"SIM generation {sim}: the IMSI and ICCID have one digit for it, so a phone can have SIM "
                f"generations 0..{SIM_GENERATIONS - 1} (at most {SIM_GENERATIONS - 1} SIM swaps)"
            )
        return str(sim)

    @staticmethod
    def _msin_index_digits(carrier: model.Carrier) -> int:
        return 15 - len(carrier.mcc) - len(carrier.mnc) - 2

    def _iccid_index_digits(self, carrier: model.Carrier) -> int:
        return _ICCID_BODY_DIGITS - 2 - len(self._country_code(carrier)) - len(carrier.mnc) - 2

    @staticmethod
    def _country_code(carrier: model.Carrier) -> str:
        code = phonenumbers.country_code_for_region(carrier.country.upper())
        # An unknown region has no calling code; 999 is reserved by ITU-T E.164 and cannot be a real issuer.
        return str(code) if code else "999"

    def _carrier_at(self, index: int, carrier: int | None) -> model.Carrier:
        c = int(self.carrier_of(index)) if carrier is None else carrier
        return self.carriers[c]

    def imsi_of(self, index: int, sim: int = 0, carrier: int | None = None) -> str:
        """Phone ``index``'s IMSI for SIM generation ``sim`` (0 for the first SIM, +1 per SIM swap; at most
        ``SIM_GENERATIONS - 1``, :class:`PopulationError` past it)."""
        self._check_index(index)
        gen = self._generation_digit(sim)
        home = self._carrier_at(index, carrier)
        return f"{home.mcc}{home.mnc}9{gen}{index:0{self._msin_index_digits(home)}d}"

    def imei_of(self, index: int) -> str:
        """Phone ``index``'s IMEI: a test TAC, the index as serial, and the Luhn check digit."""
        self._check_index(index)
        body = f"{IMEI_PREFIX}{index:0{_IMEI_SERIAL_DIGITS}d}"
        return body + luhn.calc_check_digit(body)

    def iccid_of(self, index: int, sim: int = 0, carrier: int | None = None) -> str:
        """Phone ``index``'s SIM serial (ICCID) for SIM generation ``sim``, with its Luhn check digit (``sim`` as
        for :meth:`imsi_of`)."""
        self._check_index(index)
        gen = self._generation_digit(sim)
        home = self._carrier_at(index, carrier)
        body = f"89{self._country_code(home)}{home.mnc}9{gen}{index:0{self._iccid_index_digits(home)}d}"
        return body + luhn.calc_check_digit(body)

    def identity(self, index: int, sim: int = 0) -> PhoneIdentity:
        """All of phone ``index``'s identities as strings."""
        carrier, msisdn = self.assign(np.asarray([index]))
        c = int(carrier[0])
        return PhoneIdentity(
            index=index,
            carrier=self.carriers[c].name,
            msisdn=str(int(msisdn[0])),
            imsi=self.imsi_of(index, sim, c),
            imei=self.imei_of(index),
            iccid=self.iccid_of(index, sim, c),
            condition=PhoneCondition(int(self.condition_of(np.asarray([index]))[0])),
        )
