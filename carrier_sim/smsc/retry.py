"""When the SMSC tries again: the back-off it gives a deliver_sm/data_sm (a receipt or an MO) the ESME refused.

SMPP 3.4 section 5.1.3 names the statuses that ask the sender to try later: ESME_RMSGQFUL ("message queue full"),
ESME_RTHROTTLED ("throttling error, ESME has exceeded allowed message limits"), ESME_RX_T_APPN ("ESME receiver
temporary app error code") and ESME_RSYSERR ("system error"). Any other status (ESME_RX_P_APPN, "permanent app
error", ESME_RX_R_APPN, "reject message", ...) is the ESME's final word. A request left unanswered is treated as
"try later" by the caller.

Retries back off exponentially and stop after a count rather than at a deadline: a receipt of an EXPIRED message
has already passed its validity, and an MO has none.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TypeVar

from carrier_sim.smpp.constants import CommandStatus

__all__ = ["DELIVERY_RETRY", "RETRYABLE", "RetryCounts", "RetryPolicy"]

#: SMPP 3.4 5.1.3's "try later" statuses (see the module docstring).
RETRYABLE: frozenset[int] = frozenset({
    CommandStatus.ESME_RMSGQFUL, CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RX_T_APPN,
    CommandStatus.ESME_RSYSERR,
})

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which refusals are retried, how often, and how long the SMSC waits before each retry."""

    retryable: frozenset[int] = RETRYABLE
    #: Retries after the first refusal; one more refusal after the last is final.
    attempts: int = 8
    first: float = 1.0
    longest: float = 60.0

    def delay(self, status: int, tries: int) -> float | None:
        """Seconds to wait before retry number ``tries`` (1 for the first) of a request refused with ``status``;
        None when the SMSC gives up (a final status, or no retries left)."""
        if status not in self.retryable or tries > self.attempts:
            return None
        return min(self.longest, self.first * 2.0 ** (tries - 1))


#: A refused receipt or MO: retried after 1 s, then twice as long each time (at most 60 s), at most 8 times --
#: about three minutes in all.
DELIVERY_RETRY = RetryPolicy()


class RetryCounts(dict[K, int]):
    """Retries so far per request being retried (keyed by whatever names it: a message_id...), under a policy.

    A key is held only between a retryable refusal and the request's end (accepted, or given up), so the table
    holds what is being retried now. A dict, so that "is anything being retried?" -- asked for every accepted
    receipt -- is a plain truth test.
    """

    __slots__ = ("policy",)

    def __init__(self, policy: RetryPolicy = DELIVERY_RETRY) -> None:
        super().__init__()
        self.policy = policy

    def refused(self, key: K, status: int) -> float | None:
        """The request ``key`` was refused with ``status`` (or not answered): seconds until its retry, or None
        when it is given up (its count is then forgotten)."""
        tries = self.pop(key, 0) + 1
        delay = self.policy.delay(status, tries)
        if delay is not None:
            self[key] = tries
        return delay

    def settled(self, key: K) -> None:
        """The request ``key`` ended another way (accepted, dropped): forget its count."""
        self.pop(key, None)
