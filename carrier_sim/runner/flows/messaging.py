"""Plain MO/MT traffic: a phone texts the service's number a keyword and waits for the answering MT.

Theory of operation
-------------------
Besides registrations, a service's gateway number receives ordinary texts; short codes must answer ``HELP``
(carrier and CTIA rules), so the identity core does. Each phone of this flow waits a think time after arriving,
sends ``HELP`` as an MO through its carrier's SMSC and completes when an MT that is not a REG-RESP comes back
from the gateway number; ``reply_timeout`` seconds without one is a failure. The exchange exercises the SUT's
MO handling, its MT path and the receipts of the carrier, without a registration behind it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from carrier_sim.population.scheduler import DueQueue
from carrier_sim.runner.flows.base import NEAR_DUE, AwaitingAnswer, FlowContext, PhoneFlow
from carrier_sim.scenario.model import Flow
from carrier_sim.smsc.store import StoredMessage

__all__ = ["KEYWORD", "MoMtFlow"]

#: What the phones send.
KEYWORD = "HELP"

_IDLE, _THINKING, _SENT, _DONE, _FAILED = 0, 1, 2, 3, 4


class MoMtFlow(PhoneFlow):
    """Think, send ``HELP`` to the gateway number, receive the reply."""

    name: ClassVar[str] = "mo_mt"
    stage_names: ClassVar[tuple[str, ...]] = ("mo_sent", "mt_received")

    def __init__(self, ctx: FlowContext, spec: Flow, *, reply_timeout: float = 30.0) -> None:
        super().__init__(ctx, spec)
        n = len(ctx.population)
        self.state = np.zeros(n, dtype=np.int8)
        self.t_sent = np.full(n, np.nan)
        self.next_due = np.full(n, np.inf)
        self.due = DueQueue(self.next_due, resolution=0.02)
        self.reply_timeout = reply_timeout
        #: (sent at, row) of every MO, in the order sent: the oldest still unanswered times out first.
        self._mo_sent = AwaitingAnswer(self.state, self.t_sent, _SENT)

    def arrive(self, rows: npt.NDArray[np.int64], now: float) -> None:
        """Phones start: each thinks before texting."""
        self.counters.started += len(rows)
        self.t_started[rows] = now
        self.state[rows] = _THINKING
        self.due.set_due(rows, now + self.think(rows))

    def tick(self, now: float) -> None:
        """Phones done thinking send their MO."""
        ctx = self.ctx
        for row in self.due.pop_due(now).tolist():
            if self.state[row] != _THINKING:
                continue
            carrier = int(ctx.carrier_of[row])
            self.t_sent[row] = now
            if ctx.send_mo(carrier, str(int(ctx.msisdns[row])), ctx.carriers[carrier].carrier.gateway, KEYWORD, now):
                self.state[row] = _SENT
                self._mo_sent.add(now, row)
                self.counters.reached("mo_sent")
            else:
                self.state[row] = _FAILED
                self.counters.fail("mo_unroutable")

    def on_mt(self, row: int, message: StoredMessage, now: float) -> None:
        """The answer: any MT from the gateway number that is not a REG-RESP."""
        if self.state[row] != _SENT or message.data.startswith(b"REG-RESP"):
            return
        gateway = self.ctx.carriers[int(self.ctx.carrier_of[row])].carrier.gateway
        if message.source_addr.lstrip("+") != gateway:
            return
        self.state[row] = _DONE
        self.t_done[row] = now
        self.counters.reached("mt_received")
        self.counters.completed += 1

    def quiet_until(self, now: float) -> float:
        """The next phone done thinking, or the first MO whose reply times out."""
        due = self.due.next_time()
        if due - now < NEAR_DUE:
            return due  # no whole tick to skip: spare the scan below
        oldest = self._mo_sent.oldest()  # the first MO whose reply times out
        return due if oldest is None else min(due, oldest + self.reply_timeout)

    def expire(self, now: float) -> None:
        """No reply within ``reply_timeout``: failed. Taken from the head of the queue of MOs sent, oldest first."""
        late = self._mo_sent.expire(now - self.reply_timeout, _FAILED)
        if late:
            self.counters.fail("no_reply", late)

    def latencies(self) -> dict[str, npt.NDArray[np.float64]]:
        """MO sent to reply received."""
        done = self.state == _DONE
        return {self.name: (self.t_done[done] - self.t_sent[done]).astype(np.float64)}

    def finish(self) -> None:
        """Phones still thinking or waiting count as failed."""
        lost = np.nonzero((self.state == _THINKING) | (self.state == _SENT))[0]
        if len(lost):
            self.state[lost] = _FAILED
            self.counters.fail("unfinished", len(lost))
