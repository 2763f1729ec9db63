"""Faults as data: what an emulated SMSC does wrong on purpose, deterministic under a seed.

Each probability is drawn per event by a draw keyed on the SMSC's seed and on what the event is about
(:mod:`carrier_sim.smsc.draws`), so a scenario run with the same seed misbehaves identically, and a phone's
messages meet the same faults however the population is sharded. Faults that shape bytes on the wire (split or
coalesced writes, TCP reset) are carried out by the I/O layer, which asks :class:`FaultPlan` what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FaultPlan"]


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Probabilities (0..1) and sizes of every fault an SMSC can inject. All zero: a well-behaved SMSC."""

    #: A submit response held back by ``response_delay`` seconds.
    delay_response: float = 0.0
    response_delay: float = 1.0
    #: A submit response never sent (the ESME's response timer must fire).
    drop_response: float = 0.0
    #: A request answered with generic_nack (ESME_RSYSERR) instead of its response.
    generic_nack: float = 0.0
    #: The receipt sent before the submit_sm_resp that announces its message_id.
    receipt_before_response: float = 0.0
    #: A receipt sent twice.
    duplicate_receipt: float = 0.0
    #: A receipt sent ``late_receipt_delay`` seconds late.
    late_receipt: float = 0.0
    late_receipt_delay: float = 30.0
    #: A receipt never sent.
    lost_receipt: float = 0.0
    #: Each time the SMSC's own window towards a session fills -- ``window`` deliver_sm/data_sm (receipts, MO)
    #: unanswered and more waiting to go -- it unbinds that session then, with its requests still in flight.
    unbind_with_full_window: float = 0.0
    #: After each accepted submit, the connection is reset (no unbind).
    tcp_reset: float = 0.0
    #: Outgoing bytes written in pieces cut at odd offsets (1..split_max octets), or held and coalesced.
    split_writes: float = 0.0
    split_max: int = 7
    coalesce_writes: float = 0.0

    @property
    def any(self) -> bool:
        """True when at least one fault can happen."""
        return any(
            getattr(self, name) > 0
            for name in (
                "delay_response", "drop_response", "generic_nack", "receipt_before_response",
                "duplicate_receipt", "late_receipt", "lost_receipt", "unbind_with_full_window", "tcp_reset",
                "split_writes", "coalesce_writes",
            )
        )
