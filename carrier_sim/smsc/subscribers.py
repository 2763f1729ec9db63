"""The subscribers an emulated carrier serves, and what happens to an MT addressed to each.

Conditions follow what a real SMSC learns from the HLR/MSC when it tries to deliver (3GPP TS 29.002 MAP
errors), reported to the ESME in the receipt's ``err`` and the network_error_code TLV (SMPP 3.4 5.3.2.31,
network type 3 = GSM, code = the MAP error):
- reachable: delivered (DELIVRD);
- roaming: delivered (DELIVRD) through the visited network's MSC, which takes longer: the SMSC holds the message
  ENROUTE for a roaming delay drawn per message (:class:`~carrier_sim.smsc.centre.SmscConfig` ``roaming_delay``);
- absent: MAP "absentSubscriber" (27) after the retry window (UNDELIV);
- unknown: MAP "unknownSubscriber" (1), immediately (UNDELIV);
- barred: MAP "callBarred" (13) (REJECTD).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from carrier_sim.smpp.receipt import MessageState
from carrier_sim.smpp.tlv import NetworkErrorCode

__all__ = ["Condition", "DeliveryOutcome", "SubscriberRegistry", "outcome_for"]

_GSM = 3


class Condition(enum.Enum):
    """A subscriber's condition as the network sees it when an MT is delivered."""

    REACHABLE = "reachable"
    #: Reachable in a visited network: delivered, after the SMSC's roaming delay.
    ROAMING = "roaming"
    ABSENT = "absent"
    UNKNOWN = "unknown"
    BARRED = "barred"


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """The final state of an MT and the error the receipt carries (None when delivered)."""

    state: MessageState
    error: NetworkErrorCode | None

    @property
    def err_digits(self) -> str:
        """The receipt text's ``err:`` value (3 digits, "000" when delivered)."""
        return f"{0 if self.error is None else self.error.error_code:03d}"


_OUTCOMES = {
    Condition.REACHABLE: DeliveryOutcome(MessageState.DELIVERED, None),
    Condition.ROAMING: DeliveryOutcome(MessageState.DELIVERED, None),
    Condition.ABSENT: DeliveryOutcome(MessageState.UNDELIVERABLE, NetworkErrorCode(_GSM, 27)),
    Condition.UNKNOWN: DeliveryOutcome(MessageState.UNDELIVERABLE, NetworkErrorCode(_GSM, 1)),
    Condition.BARRED: DeliveryOutcome(MessageState.REJECTED, NetworkErrorCode(_GSM, 13)),
}


def outcome_for(condition: Condition) -> DeliveryOutcome:
    """What delivering an MT to a subscriber in this condition ends as."""
    return _OUTCOMES[condition]


class SubscriberRegistry:
    """Conditions by MSISDN (digits only, international format without '+').

    ``default`` applies to numbers not listed: the standalone SMSC treats every number as a reachable
    subscriber; a scenario lists its population and marks the rest unknown.
    """

    def __init__(self, default: Condition = Condition.REACHABLE) -> None:
        self.default = default
        self._conditions: dict[str, Condition] = {}

    @staticmethod
    def normalise(msisdn: str) -> str:
        """Digits only: '+44 7700 900123' and '447700900123' are one subscriber."""
        return "".join(ch for ch in msisdn if ch.isdigit())

    def set(self, msisdn: str, condition: Condition) -> None:
        """Record a subscriber's condition."""
        self._conditions[self.normalise(msisdn)] = condition

    def update(self, entries: Iterable[tuple[str, Condition]]) -> None:
        """Record many subscribers at once."""
        for msisdn, condition in entries:
            self.set(msisdn, condition)

    def condition(self, msisdn: str) -> Condition:
        """The condition of a number (the default if not listed)."""
        return self._conditions.get(self.normalise(msisdn), self.default)

    def __len__(self) -> int:
        return len(self._conditions)
