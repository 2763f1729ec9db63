"""ESME accounts: who may bind, how, how many times, from which source addresses, and how MO reaches them.

Bind failures answer the statuses SMPP 3.4 section 5.1.3 gives them: an unknown system_id is ESME_RINVSYSID,
a wrong password ESME_RINVPASWD, a bind type the account may not use or one bind too many ESME_RBINDFAIL, and
a second bind on an already bound session ESME_RALYBND (the session layer reports that one).
"""

from __future__ import annotations

import enum
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from carrier_sim.smpp.constants import CommandId, CommandStatus

__all__ = ["Account", "AccountRegistry", "BindKind", "MoDelivery"]


class BindKind(enum.Enum):
    """The three bind operations."""

    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"
    TRANSCEIVER = "transceiver"

    @classmethod
    def of(cls, command_id: CommandId) -> BindKind:
        """The bind kind of a bind_* command."""
        return _BIND_KINDS[command_id]

    @property
    def receives(self) -> bool:
        """True when the SMSC may send deliver_sm/data_sm on such a bind."""
        return self is not BindKind.TRANSMITTER

    @property
    def transmits(self) -> bool:
        """True when the ESME may submit on such a bind."""
        return self is not BindKind.RECEIVER


_BIND_KINDS = {
    CommandId.bind_transmitter: BindKind.TRANSMITTER,
    CommandId.bind_receiver: BindKind.RECEIVER,
    CommandId.bind_transceiver: BindKind.TRANSCEIVER,
}


class MoDelivery(enum.Enum):
    """Which PDU carries MO messages and receipts to the account's receiver binds."""

    DELIVER_SM = "deliver_sm"
    DATA_SM = "data_sm"


#: A route holding any of these (or starting with ^) is a regular expression; otherwise a number to equal.
_REGEX_CHARS = frozenset("[]().*+?\\|")


def _compile(what: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ValueError(f"{what}: {pattern!r} is not a regular expression ({err})") from None


@dataclass(frozen=True, slots=True)
class Account:
    """One ESME account.

    ``source_allow`` holds regular expressions an MT's source_addr must fully match (empty: any);
    ``routes`` the MO destinations (short codes, long numbers, regular expressions) this account receives, in
    addition to the address_range its receiver binds announce.
    """

    system_id: str
    password: str
    bind_kinds: frozenset[BindKind] = frozenset(BindKind)
    max_binds: int = 8
    source_allow: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    mo_delivery: MoDelivery = MoDelivery.DELIVER_SM
    throughput: float = 0.0  # submissions per second per system_id; 0 = unlimited
    bind_throughput: float = 0.0  # per bind; 0 = unlimited
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)
    # Each route once: its pattern when it is a regular expression, None when it is a plain number. Compiled here
    # rather than per MO (scanning each route for metacharacters on every MO was ~2 % of a storm's runner CPU),
    # and so that a bad expression is refused when the account is made, not when the first MO arrives.
    _route_patterns: tuple[tuple[str, re.Pattern[str] | None], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", tuple(_compile("source_allow", p) for p in self.source_allow))
        object.__setattr__(self, "_route_patterns", tuple(
            (r, _compile("routes", r) if r.startswith("^") or any(ch in r for ch in _REGEX_CHARS) else None)
            for r in self.routes
        ))

    def routes_to(self, destination: str) -> bool:
        """Whether one of the account's routes takes MO for ``destination`` (equal number, or a full match)."""
        for route, pattern in self._route_patterns:
            if destination == route if pattern is None else pattern.fullmatch(destination) is not None:
                return True
        return False

    def source_allowed(self, source_addr: str) -> bool:
        """Whether an MT from this source address is allowed on this account."""
        return not self._compiled or any(p.fullmatch(source_addr) for p in self._compiled)


class AccountRegistry:
    """Accounts by system_id and the binds each currently holds."""

    def __init__(self, accounts: Iterable[Account] = ()) -> None:
        self._accounts = {a.system_id: a for a in accounts}
        self._binds: dict[str, int] = {}

    def add(self, account: Account) -> None:
        """Add or replace an account."""
        self._accounts[account.system_id] = account

    def get(self, system_id: str) -> Account | None:
        """The account with this system_id, if any."""
        return self._accounts.get(system_id)

    def __iter__(self) -> Iterable[Account]:
        return iter(self._accounts.values())

    def binds(self, system_id: str) -> int:
        """How many binds this system_id holds now."""
        return self._binds.get(system_id, 0)

    def authenticate(self, system_id: str, password: str, kind: BindKind) -> tuple[CommandStatus, Account | None]:
        """Check a bind request; on ESME_ROK the bind is counted until :meth:`release`."""
        account = self._accounts.get(system_id)
        if account is None:
            return CommandStatus.ESME_RINVSYSID, None
        # Constant-time comparison: the emulator should not teach clients to rely on timing-leaky SMSCs.
        if not hmac.compare_digest(account.password.encode(), password.encode()):
            return CommandStatus.ESME_RINVPASWD, None
        if kind not in account.bind_kinds or self.binds(system_id) >= account.max_binds:
            return CommandStatus.ESME_RBINDFAIL, None
        self._binds[system_id] = self.binds(system_id) + 1
        return CommandStatus.ESME_ROK, account

    def release(self, system_id: str) -> None:
        """Forget one bind of this system_id (unbind or connection loss)."""
        left = self.binds(system_id) - 1
        if left > 0:
            self._binds[system_id] = left
        else:
            self._binds.pop(system_id, None)
