"""Which PDU may flow in which session state, and where the state-changing PDUs lead: the session's table.

Theory: SMPP 3.4 section 2.3 table 2-1 ("SMPP PDUs and the session states in which they may be issued") and
SMPP 5.0 section 2.4 (the operation matrix) are tables, so this module is one too. Each specification table is
written below in its own shape — one :class:`IssueRule` per request: the states in which an ESME may issue it and
the states in which an SMSC may — and :data:`SESSION_TABLE` expands them, once at import, into a verdict for every
``(interface version, role, state, direction, command)``. A verdict is the command_status a peer would be told:
``ESME_ROK`` when the PDU may flow, otherwise the reason it may not. :mod:`carrier_sim.smpp.session` looks verdicts
up; it holds no per-command branches of its own.

Choices where the specifications are silent, loose or self-contradictory (each is also noted beside its row):

- A response may flow wherever its request may, in the opposite direction (table 2-1 lists them that way), and
  also in UNBOUND, so that operations already in flight when an unbind was sent or received can complete.
- generic_nack may flow in every state but CLOSED in both versions. Table 2-1 of 3.4 lists only the bound states,
  but 3.4 section 4.3 requires a generic_nack for a corrupt PDU whatever the state (e.g. garbage before a bind).
- enquire_link: 3.4 allows it only in bound states (table 2-1); 5.0 also in OPEN, OUTBOUND and UNBOUND (2.4).
- data_sm: 3.4 lets either side issue it in any bound state (table 2-1); 5.0 tightens it to ESME->MC in
  BOUND_TX/BOUND_TRX and MC->ESME in BOUND_RX/BOUND_TRX (2.4). Each version gets its own rule.
- replace_sm: table 2-1 of 3.4 lists BOUND_TX only, which contradicts 3.4 section 2.3 ("An ESME bound as a
  Transceiver supports the complete set of operations supported by a Transmitter ESME and a Receiver ESME"); we
  follow section 2.3 and 5.0, allowing BOUND_TRX too.
- OUTBOUND is a 5.0 state; we use it for 3.4 as well. After an outbind, 3.4 section 2.2.1 says "the ESME
  responds with a bind_receiver request"; 5.0 also allows bind_transceiver.
- The broadcast family (broadcast_sm, query_broadcast_sm, cancel_broadcast_sm) exists only in 5.0: on a 3.4 (or
  3.3) session their command_ids are unknown, so the verdict is ESME_RINVCMDID (answered with a generic_nack, 3.4
  section 4.3 "Unknown command_id").
- unbind may also be received (and sent) in UNBOUND, so that two unbinds crossing on the wire both get ESME_ROK
  and each side closes when its own unbind_resp arrives. The session refuses a second unbind of its own.
- A bind in a bound state earns ESME_RALYBND ("ESME Already in Bound State"), any other misplaced PDU
  ESME_RINVBNDSTS ("Incorrect BIND Status for given command").
- Interface version 3.3 uses the 3.4 table: this project does not emulate 3.3's narrower command set.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from carrier_sim.smpp.constants import CommandId, CommandStatus, InterfaceVersion

__all__ = [
    "ALL_OPEN_STATES",
    "BOUND_STATES",
    "NO_STATES",
    "OPERATION_MATRIX_V50",
    "SESSION_TABLE",
    "TABLE_2_1_V34",
    "TRANSITIONS",
    "Direction",
    "IssueRule",
    "Role",
    "SessionState",
    "rules_for",
    "verdict",
    "verdict_table",
]


class Role(enum.Enum):
    """Which end of the bind this session plays."""

    ESME = "ESME"
    SMSC = "SMSC"

    # Members are singletons compared by identity, so identity is a valid hash; Enum's own hashes the name in
    # Python code, and every verdict lookup hashes a state, a role and a direction.
    __hash__ = object.__hash__

    @property
    def peer(self) -> Role:
        """The role at the other end of the connection."""
        return Role.SMSC if self is Role.ESME else Role.ESME


class Direction(enum.Enum):
    """Whether a PDU leaves this session (SEND) or arrives at it (RECEIVE)."""

    SEND = "send"
    RECEIVE = "receive"

    # Members are singletons compared by identity, so identity is a valid hash; Enum's own hashes the name in
    # Python code, and every verdict lookup hashes a state, a role and a direction.
    __hash__ = object.__hash__


class SessionState(enum.Enum):
    """SMPP session states (3.4 section 2.3; 5.0 section 2.3 adds OUTBOUND and UNBOUND).

    OUTBOUND: the SMSC sent, or the ESME received, an outbind; a bind is awaited. UNBOUND: an unbind was sent or
    received and the handshake (with whatever was in flight) has not finished yet.
    """

    OPEN = "OPEN"
    OUTBOUND = "OUTBOUND"
    BOUND_TX = "BOUND_TX"
    BOUND_RX = "BOUND_RX"
    BOUND_TRX = "BOUND_TRX"
    UNBOUND = "UNBOUND"
    CLOSED = "CLOSED"

    # Members are singletons compared by identity, so identity is a valid hash; Enum's own hashes the name in
    # Python code, and every verdict lookup hashes a state, a role and a direction.
    __hash__ = object.__hash__

    @property
    def is_bound(self) -> bool:
        """True in BOUND_TX, BOUND_RX and BOUND_TRX."""
        return self in BOUND_STATES


S = SessionState
NO_STATES: frozenset[SessionState] = frozenset()
BOUND_STATES: frozenset[SessionState] = frozenset({S.BOUND_TX, S.BOUND_RX, S.BOUND_TRX})
#: Every state in which the connection is up.
ALL_OPEN_STATES: frozenset[SessionState] = frozenset(set(S) - {S.CLOSED})
_TX = frozenset({S.BOUND_TX, S.BOUND_TRX})
_RX = frozenset({S.BOUND_RX, S.BOUND_TRX})
_OPEN = frozenset({S.OPEN})
_UNBINDABLE = BOUND_STATES | {S.UNBOUND}


@dataclass(frozen=True, slots=True)
class IssueRule:
    """One request's row of table 2-1: the states in which an ESME, and an SMSC, may issue it."""

    command: CommandId
    esme: frozenset[SessionState]
    smsc: frozenset[SessionState]

    def issuable(self, issuer: Role) -> frozenset[SessionState]:
        """States in which ``issuer`` may put this command on the wire."""
        return self.esme if issuer is Role.ESME else self.smsc


C = CommandId

#: SMPP 3.4 section 2.3, table 2-1, as written (with the choices listed in the module docstring).
TABLE_2_1_V34: tuple[IssueRule, ...] = (
    IssueRule(C.bind_transmitter, _OPEN, NO_STATES),
    # 3.4 section 2.2.1: after an outbind "the ESME responds with a bind_receiver request".
    IssueRule(C.bind_receiver, frozenset({S.OPEN, S.OUTBOUND}), NO_STATES),
    IssueRule(C.bind_transceiver, _OPEN, NO_STATES),
    IssueRule(C.outbind, NO_STATES, _OPEN),
    # UNBOUND too, so that two unbinds crossing on the wire are both answered ESME_ROK.
    IssueRule(C.unbind, _UNBINDABLE, _UNBINDABLE),
    IssueRule(C.submit_sm, _TX, NO_STATES),
    IssueRule(C.submit_multi, _TX, NO_STATES),
    IssueRule(C.query_sm, _TX, NO_STATES),
    IssueRule(C.cancel_sm, _TX, NO_STATES),
    # Table 2-1 says BOUND_TX only; section 2.3 says a transceiver may do whatever a transmitter may.
    IssueRule(C.replace_sm, _TX, NO_STATES),
    IssueRule(C.deliver_sm, NO_STATES, _RX),
    IssueRule(C.data_sm, BOUND_STATES, BOUND_STATES),
    IssueRule(C.enquire_link, BOUND_STATES, BOUND_STATES),
    IssueRule(C.alert_notification, NO_STATES, _RX),
)

_PRE_BIND_5 = frozenset({S.OPEN, S.OUTBOUND})

#: SMPP 5.0 section 2.4, the operation matrix.
OPERATION_MATRIX_V50: tuple[IssueRule, ...] = (
    IssueRule(C.bind_transmitter, _OPEN, NO_STATES),
    # 5.0: after an outbind the ESME binds as a receiver or a transceiver.
    IssueRule(C.bind_receiver, _PRE_BIND_5, NO_STATES),
    IssueRule(C.bind_transceiver, _PRE_BIND_5, NO_STATES),
    IssueRule(C.outbind, NO_STATES, _OPEN),
    IssueRule(C.unbind, _UNBINDABLE, _UNBINDABLE),
    IssueRule(C.submit_sm, _TX, NO_STATES),
    IssueRule(C.submit_multi, _TX, NO_STATES),
    IssueRule(C.query_sm, _TX, NO_STATES),
    IssueRule(C.cancel_sm, _TX, NO_STATES),
    IssueRule(C.replace_sm, _TX, NO_STATES),
    IssueRule(C.deliver_sm, NO_STATES, _RX),
    # 5.0 narrows data_sm to the direction the bind type allows.
    IssueRule(C.data_sm, _TX, _RX),
    # 5.0 2.4: enquire_link "may be issued" in every state of an open connection.
    IssueRule(C.enquire_link, ALL_OPEN_STATES, ALL_OPEN_STATES),
    IssueRule(C.alert_notification, NO_STATES, _RX),
    IssueRule(C.broadcast_sm, _TX, NO_STATES),
    IssueRule(C.query_broadcast_sm, _TX, NO_STATES),
    IssueRule(C.cancel_broadcast_sm, _TX, NO_STATES),
)


def rules_for(version: InterfaceVersion) -> tuple[IssueRule, ...]:
    """The specification table that governs a session of this interface version."""
    return OPERATION_MATRIX_V50 if version >= InterfaceVersion.V50 else TABLE_2_1_V34


def _issuable(rules: tuple[IssueRule, ...]) -> dict[tuple[CommandId, Role], frozenset[SessionState]]:
    """Requests from the spec table, plus the derived rows for responses and generic_nack."""
    out: dict[tuple[CommandId, Role], frozenset[SessionState]] = {}
    for rule in rules:
        for issuer in Role:
            out[rule.command, issuer] = rule.issuable(issuer)
            response = rule.command.response
            if response is not None:
                # The answer flows the other way, in the request's states; plus UNBOUND, so that operations in
                # flight when the unbind happened still complete.
                states = rule.issuable(issuer)
                drain = frozenset({S.UNBOUND}) if states & BOUND_STATES else NO_STATES
                out[response, issuer.peer] = states | drain
    for issuer in Role:
        # 3.4 section 4.3: generic_nack answers a corrupt PDU whatever the state.
        out[C.generic_nack, issuer] = ALL_OPEN_STATES
    return out


_BIND_REQUESTS = frozenset({C.bind_transmitter, C.bind_receiver, C.bind_transceiver})


def _expand() -> dict[tuple[InterfaceVersion, Role, SessionState, Direction, CommandId], CommandStatus]:
    table: dict[tuple[InterfaceVersion, Role, SessionState, Direction, CommandId], CommandStatus] = {}
    for version in InterfaceVersion:
        issuable = _issuable(rules_for(version))
        known = {command for command, _ in issuable}
        for role in Role:
            for direction in Direction:
                issuer = role if direction is Direction.SEND else role.peer
                for state in SessionState:
                    for command in CommandId:
                        if command not in known:
                            status = CommandStatus.ESME_RINVCMDID
                        elif state in issuable[command, issuer]:
                            status = CommandStatus.ESME_ROK
                        elif command in _BIND_REQUESTS and state in BOUND_STATES:
                            status = CommandStatus.ESME_RALYBND
                        else:
                            status = CommandStatus.ESME_RINVBNDSTS
                        table[version, role, state, direction, command] = status
    return table


#: The verdict for every (interface version, role, state, direction, command): ESME_ROK if the PDU may flow,
#: else the status that says why not (ESME_RINVBNDSTS, ESME_RALYBND, or ESME_RINVCMDID for a command the
#: version does not have).
SESSION_TABLE: Mapping[tuple[InterfaceVersion, Role, SessionState, Direction, CommandId], CommandStatus] = _expand()


def verdict(
    version: InterfaceVersion, role: Role, state: SessionState, direction: Direction, command: CommandId
) -> CommandStatus:
    """ESME_ROK if ``command`` may flow in ``direction`` for ``role`` in ``state``, else the reason it may not."""
    return SESSION_TABLE[version, role, state, direction, command]


VerdictTable = Mapping[tuple[SessionState, Direction, CommandId], CommandStatus]

#: SESSION_TABLE split by (interface version, role): what one session consults, a lookup per PDU.
_BY_SESSION: dict[tuple[InterfaceVersion, Role], dict[tuple[SessionState, Direction, CommandId], CommandStatus]] = {}
for (_version, _role, _state, _direction, _command), _status in SESSION_TABLE.items():
    _BY_SESSION.setdefault((_version, _role), {})[_state, _direction, _command] = _status
del _version, _role, _state, _direction, _command, _status


def verdict_table(version: InterfaceVersion, role: Role) -> VerdictTable:
    """The slice of :data:`SESSION_TABLE` for one interface version and role, keyed by (state, direction,
    command): ``verdict_table(v, r)[s, d, c] == verdict(v, r, s, d, c)``."""
    return _BY_SESSION[version, role]


#: Where a PDU that is legal in a state leads, whichever side sent it. A bind response leads to a bound state only
#: when its command_status is ESME_ROK; an unbind_resp closes the session only when no other half of an unbind
#: handshake is pending (both sides may unbind at once). Pairs absent here leave the state unchanged.
TRANSITIONS: Mapping[tuple[SessionState, CommandId], SessionState] = {
    (S.OPEN, C.bind_transmitter_resp): S.BOUND_TX,
    (S.OPEN, C.bind_receiver_resp): S.BOUND_RX,
    (S.OPEN, C.bind_transceiver_resp): S.BOUND_TRX,
    (S.OUTBOUND, C.bind_receiver_resp): S.BOUND_RX,
    (S.OUTBOUND, C.bind_transceiver_resp): S.BOUND_TRX,
    (S.OPEN, C.outbind): S.OUTBOUND,
    (S.BOUND_TX, C.unbind): S.UNBOUND,
    (S.BOUND_RX, C.unbind): S.UNBOUND,
    (S.BOUND_TRX, C.unbind): S.UNBOUND,
    (S.UNBOUND, C.unbind_resp): S.CLOSED,
}
