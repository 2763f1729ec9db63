"""Token buckets: how an SMSC limits submissions per bind and per system_id (answered with ESME_RTHROTTLED).

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second of the caller's clock; each
accepted request takes one. Pure: ``now`` is an argument, so virtual-time scenarios and real sockets agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    """A token bucket. ``rate`` <= 0 means unlimited."""

    rate: float
    burst: float
    tokens: float = field(default=-1.0)
    updated: float | None = None

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now

    def try_take(self, now: float, amount: float = 1.0) -> bool:
        """Take ``amount`` tokens if they are there; False (and nothing taken) otherwise."""
        if self.rate <= 0:
            return True
        self._refill(now)
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False

    def next_available(self, now: float, amount: float = 1.0) -> float:
        """When ``amount`` tokens will be there, if nobody else takes any."""
        if self.rate <= 0:
            return now
        self._refill(now)
        missing = amount - self.tokens
        return now if missing <= 0 else now + missing / self.rate
