"""What an emulated carrier knows about its subscriptions, for its CAMARA network APIs.

Pure data: no I/O, no clock. Every mutation takes ``now`` (an aware ``datetime``) from the scenario, so a
scenario in virtual time and a live server share the same records and get the same answers.

One :class:`Subscription` per MSISDN currently or formerly assigned by this carrier:

- ``subscriber_since``: when the current subscriber's contract began. Number Recycling compares it with the
  consumer's ``specifiedDate``.
- ``sim_activated_at`` / ``last_sim_swap_at``: SIM Swap. CAMARA reports the SIM activation time as
  ``latestSimChange`` when no swap has happened since.
- ``connectivity`` / ``status_at``: Device Reachability Status. An empty set means unreachable.
- ``device_tokens``: three-legged access tokens bound to the device holding this number (the emulation of
  network-based authentication, see ``docs/camara.md``). They die with the SIM: a SIM swap, recycling or porting
  the number out revokes them, because the device (or the person) the network authenticated is gone. Each may
  carry an expiry; the caller compares it with its clock.

A number that ceased (``deactivate``) stays on file as unassigned until it is reassigned, which is what makes it
*recycled*; a number ported out leaves the records entirely and is unknown to this carrier afterwards.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "Connectivity",
    "DeviceToken",
    "SubscriberRecords",
    "Subscription",
    "UnknownNumber",
]


class Connectivity(enum.Enum):
    """How the network can reach a device (CAMARA ``ConnectivityType``)."""

    DATA = "DATA"
    SMS = "SMS"


ALWAYS_ON: frozenset[Connectivity] = frozenset({Connectivity.DATA, Connectivity.SMS})


class UnknownNumber(KeyError):
    """The MSISDN is not a subscription of this carrier (never was, or was ported out)."""


@dataclass(frozen=True, slots=True)
class DeviceToken:
    """A three-legged access token bound to the device holding ``msisdn``.

    ``scopes`` None means every scope; ``expires_at`` None means it never expires (the holder of the records
    decides lifetimes, these records only remember them).
    """

    msisdn: str
    scopes: frozenset[str] | None
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        """Whether the token is past its lifetime at ``now``."""
        return self.expires_at is not None and now >= self.expires_at


@dataclass(slots=True)
class Subscription:
    """The carrier's record of one MSISDN."""

    msisdn: str
    subscriber_since: datetime
    sim_activated_at: datetime
    last_sim_swap_at: datetime | None = None
    connectivity: frozenset[Connectivity] = ALWAYS_ON
    status_at: datetime | None = None
    assigned: bool = True
    device_tokens: dict[str, DeviceToken] = field(default_factory=dict)

    @property
    def latest_sim_change(self) -> datetime:
        """The last time the MSISDN was paired with a SIM: the last swap, else the SIM's activation."""
        return self.last_sim_swap_at if self.last_sim_swap_at is not None else self.sim_activated_at

    @property
    def reachable(self) -> bool:
        """Whether the network can reach the device at all."""
        return self.assigned and bool(self.connectivity)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"time must be timezone-aware, got {now!r}")
    return now


class SubscriberRecords:
    """The subscriptions of one emulated carrier, keyed by E.164 MSISDN (``+`` and digits)."""

    def __init__(self) -> None:
        self._by_msisdn: dict[str, Subscription] = {}
        self._tokens: dict[str, str] = {}

    # --- reading ------------------------------------------------------------------------------------------
    def __contains__(self, msisdn: object) -> bool:
        return msisdn in self._by_msisdn

    def __iter__(self) -> Iterator[Subscription]:
        return iter(self._by_msisdn.values())

    def __len__(self) -> int:
        return len(self._by_msisdn)

    def get(self, msisdn: str) -> Subscription:
        """The record for ``msisdn``; raises :class:`UnknownNumber` if this carrier has none."""
        try:
            return self._by_msisdn[msisdn]
        except KeyError:
            raise UnknownNumber(msisdn) from None

    def token(self, token: str) -> DeviceToken | None:
        """The device token ``token``, or None if it was never issued or has been revoked."""
        msisdn = self._tokens.get(token)
        if msisdn is None:
            return None
        return self._by_msisdn[msisdn].device_tokens[token]

    # --- scenario events ------------------------------------------------------------------------------------
    def activate(
        self,
        msisdn: str,
        now: datetime,
        *,
        subscriber_since: datetime | None = None,
        connectivity: Iterable[Connectivity] = ALWAYS_ON,
    ) -> Subscription:
        """A new subscriber takes ``msisdn`` with a new SIM at ``now``.

        If the number was on file (ceased, or assigned to someone else) this is a reassignment: the number
        becomes *recycled* relative to any date before ``now`` and the previous holder's tokens are revoked.
        """
        now = _aware(now)
        since = _aware(subscriber_since) if subscriber_since is not None else now
        old = self._by_msisdn.get(msisdn)
        if old is not None:
            self._revoke_all(old)
        record = Subscription(
            msisdn=msisdn,
            subscriber_since=since,
            sim_activated_at=now,
            connectivity=frozenset(connectivity),
            status_at=now,
        )
        self._by_msisdn[msisdn] = record
        return record

    def sim_swap(self, msisdn: str, now: datetime) -> None:
        """The same subscriber moves ``msisdn`` to a new SIM at ``now`` (the event fraudsters provoke).

        Tokens the network issued to the device with the old SIM are revoked: a token must not outlive the
        SIM whose network attachment it vouched for (a swap is exactly how a fraudster would inherit one).
        """
        record = self._assigned(msisdn)
        self._revoke_all(record)
        record.last_sim_swap_at = _aware(now)
        record.status_at = now

    def deactivate(self, msisdn: str, now: datetime) -> None:
        """The subscriber's contract ends; the number stays with this carrier, unassigned, until reassigned."""
        record = self._assigned(msisdn)
        self._revoke_all(record)
        record.assigned = False
        record.connectivity = frozenset()
        record.status_at = _aware(now)

    def recycle(self, msisdn: str, now: datetime) -> Subscription:
        """End the current contract and give the number to a new subscriber, both at ``now``."""
        self.get(msisdn)
        return self.activate(msisdn, now)

    def port_in(self, msisdn: str, now: datetime, *, subscriber_since: datetime | None = None) -> Subscription:
        """A subscriber brings ``msisdn`` from another carrier: a new SIM here, possibly an older contract."""
        return self.activate(msisdn, now, subscriber_since=subscriber_since)

    def port_out(self, msisdn: str, now: datetime) -> None:
        """The number leaves for another carrier; afterwards this carrier does not know it."""
        _aware(now)
        record = self.get(msisdn)
        self._revoke_all(record)
        del self._by_msisdn[msisdn]

    def set_reachability(self, msisdn: str, now: datetime, connectivity: Iterable[Connectivity]) -> None:
        """The network observes the device reachable over ``connectivity`` (empty: unreachable) at ``now``."""
        record = self._assigned(msisdn)
        record.connectivity = frozenset(connectivity)
        record.status_at = _aware(now)

    # --- three-legged tokens ----------------------------------------------------------------------------
    def bind_token(
        self,
        msisdn: str,
        token: str,
        scopes: Iterable[str] | None = None,
        *,
        expires_at: datetime | None = None,
    ) -> DeviceToken:
        """Bind ``token`` to the device holding ``msisdn`` (network-based authentication succeeded)."""
        record = self._assigned(msisdn)
        if token in self._tokens:
            raise ValueError("token already bound")
        bound = DeviceToken(
            msisdn,
            frozenset(scopes) if scopes is not None else None,
            _aware(expires_at) if expires_at is not None else None,
        )
        record.device_tokens[token] = bound
        self._tokens[token] = msisdn
        return bound

    def revoke_token(self, token: str) -> None:
        """Forget ``token``; unknown tokens are ignored."""
        msisdn = self._tokens.pop(token, None)
        if msisdn is not None:
            self._by_msisdn[msisdn].device_tokens.pop(token, None)

    # --- internals ------------------------------------------------------------------------------------
    def _assigned(self, msisdn: str) -> Subscription:
        record = self.get(msisdn)
        if not record.assigned:
            raise UnknownNumber(msisdn)
        return record

    def _revoke_all(self, record: Subscription) -> None:
        for token in record.device_tokens:
            self._tokens.pop(token, None)
        record.device_tokens.clear()
