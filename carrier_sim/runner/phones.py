"""The phones' side of a run: the activation flow over columns, one row per phone.

Theory of operation. A phone is a row: its state, timestamps and next deadline live in numpy arrays; no Python
object or asyncio task exists per phone. Work happens only at events: an arrival (the phone sends REG-REQ by
handing an MO to its carrier's SMSC, in process), an MT delivered by the SMSC to the phone's number (the
REG-RESP, parsed into a proof), a due deadline (think time over: the phone calls authenticate, through a fixed
pool of HTTP workers), an HTTP answer. The proof is the only per-phone value held outside the columns, and only
while the phone is between REG-RESP and authenticate.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from carrier_sim.smpp.coding import decode_text
from carrier_sim.smpp.errors import SmppError
from carrier_sim.smsc.store import StoredMessage

__all__ = ["ActivationFlow", "FlowCounters", "Step"]


class Step(enum.IntEnum):
    """Where a phone is in the activation flow (the state column)."""

    WAITING = 0
    REG_SENT = 1
    THINKING = 2
    AUTH_SENT = 3
    DONE = 4
    FAILED = 5


@dataclass
class FlowCounters:
    """The funnel and the failure reasons, for metrics and the dashboard."""

    arrived: int = 0
    reg_sent: int = 0
    reg_resp: int = 0
    auth_sent: int = 0
    done: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str, n: int = 1) -> None:
        """Count ``n`` failures for ``reason``."""
        self.failed += n
        self.failures[reason] = self.failures.get(reason, 0) + n


def push_token(seed: int, index: int) -> str:
    """The device push token of phone ``index``: a pure function of (seed, index)."""
    return hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=32).hexdigest()


class ActivationFlow:
    """REG-REQ → REG-RESP → think → authenticate, for every phone, over columns."""

    def __init__(
        self,
        seed: int,
        msisdns: npt.NDArray[np.int64],
        carrier_of: npt.NDArray[np.int8],
        think: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float64]],
        send_mo: Callable[[int, str, str, float], bool],
        reg_timeout: float = 30.0,
    ) -> None:
        n = len(msisdns)
        self.seed = seed
        self.msisdns = msisdns
        self.carrier_of = carrier_of
        self.state = np.zeros(n, dtype=np.int8)
        self.t_arrived = np.full(n, np.nan)
        self.t_resp = np.full(n, np.nan)
        self.t_auth = np.full(n, np.nan)
        self.t_done = np.full(n, np.nan)
        self._order = np.argsort(msisdns)
        self._sorted = msisdns[self._order]
        self._think = think
        self._send_mo = send_mo
        self.reg_timeout = reg_timeout
        self.proofs: dict[int, str] = {}
        self._due: list[tuple[float, int]] = []
        self.counters = FlowCounters()
        self.auth_queue: asyncio.Queue[int] = asyncio.Queue()

    def index_of(self, msisdn: int) -> int | None:
        """The phone owning a number, by binary search over the sorted numbers."""
        pos = int(np.searchsorted(self._sorted, msisdn))
        if pos < len(self._sorted) and self._sorted[pos] == msisdn:
            return int(self._order[pos])
        return None

    def arrive(self, indices: npt.NDArray[np.int64], now: float) -> None:
        """Phones start activating: each sends its REG-REQ."""
        for i in indices.tolist():
            self.counters.arrived += 1
            self.t_arrived[i] = now
            text = f"REG-REQ?v=3;t={push_token(self.seed, i)};r={i + 1};"
            carrier = int(self.carrier_of[i])
            if self._send_mo(carrier, str(int(self.msisdns[i])), text, now):
                self.state[i] = Step.REG_SENT
                self.counters.reg_sent += 1
            else:
                self.state[i] = Step.FAILED
                self.counters.fail("mo_unroutable")

    def on_mt(self, message: StoredMessage, now: float) -> None:
        """An MT reached a phone: a REG-RESP moves it to THINKING with its authenticate due later."""
        try:
            number = int(message.destination_addr)
        except ValueError:
            return
        i = self.index_of(number)
        if i is None or self.state[i] != Step.REG_SENT:
            return
        try:
            text = decode_text(message.data, message.data_coding)
        except SmppError:
            return
        proof = _proof_of(text, i + 1)
        if proof is None:
            return
        self.proofs[i] = proof
        self.state[i] = Step.THINKING
        self.t_resp[i] = now
        self.counters.reg_resp += 1
        delay = float(self._think(np.array([i], dtype=np.int64))[0])
        heapq.heappush(self._due, (now + delay, i))

    def tick(self, now: float) -> None:
        """Queue the phones whose think time is over; fail those whose REG-RESP never came."""
        while self._due and self._due[0][0] <= now:
            _, i = heapq.heappop(self._due)
            if self.state[i] == Step.THINKING:
                self.state[i] = Step.AUTH_SENT
                self.t_auth[i] = now
                self.counters.auth_sent += 1
                self.auth_queue.put_nowait(i)

    def expire(self, now: float) -> int:
        """Phones still waiting for their REG-RESP after ``reg_timeout`` fail (vectorised scan)."""
        late = np.nonzero((self.state == Step.REG_SENT) & (self.t_arrived < now - self.reg_timeout))[0]
        if len(late):
            self.state[late] = Step.FAILED
            self.counters.fail("no_reg_resp", len(late))
        return len(late)

    def authenticated(self, i: int, ok: bool, reason: str, now: float) -> None:
        """The HTTP answer to phone ``i``'s authenticate."""
        self.proofs.pop(i, None)
        if ok:
            self.state[i] = Step.DONE
            self.t_done[i] = now
            self.counters.done += 1
        else:
            self.state[i] = Step.FAILED
            self.counters.fail(reason)

    @property
    def in_flight(self) -> int:
        """Phones between arrival and a final state (from the counters: no scan of the columns)."""
        c = self.counters
        return c.arrived - c.done - c.failed


def _proof_of(text: str, request_id: int) -> str | None:
    if not text.startswith("REG-RESP?"):
        return None
    fields = dict(part.split("=", 1) for part in text[len("REG-RESP?"):].split(";") if "=" in part)
    if fields.get("r") != str(request_id):
        return None
    return fields.get("s")
