"""The session's bookkeeping shortcuts against what they stand for.

- ``next_deadline`` reads the first request in flight while deadlines were handed out in order, and takes the
  minimum over all of them otherwise: both must give the earliest deadline, whatever order ``now`` came in.
- The enquire_link timer pauses while an enquire_link of ours is in flight (a count, not a search).
- ``send_if_allowed`` is ``send if can_send else None``.
- Verdicts come from a per-session slice of SESSION_TABLE that must follow the negotiated version.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from carrier_sim.smpp.codec import decode, encode
from carrier_sim.smpp.constants import CommandId, InterfaceVersion
from carrier_sim.smpp.events import BindAccepted, BindRequested
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.session import Session, SessionConfig
from carrier_sim.smpp.session_table import SESSION_TABLE, Role, verdict_table

C = CommandId
T0 = 1000.0


def _pair(window: int = 50, **overrides: Any) -> tuple[Session, Session]:
    values: dict[str, Any] = {"session_init_timeout": None, "enquire_link_interval": None,
                              "inactivity_timeout": None, "response_timeout": 30.0, "window": window}
    values.update(overrides)
    esme = Session(SessionConfig(Role.ESME, **values), now=T0)
    smsc = Session(SessionConfig(Role.SMSC, **values), now=T0)
    esme.bind(C.bind_transceiver, system_id="esme", password="pw", now=T0)
    bind = next(e for e in smsc.receive_data(esme.data_to_send(), T0) if isinstance(e, BindRequested))
    smsc.accept_bind(bind.request, system_id="smsc", now=T0)
    assert any(isinstance(e, BindAccepted) for e in esme.receive_data(smsc.data_to_send(), T0))
    return esme, smsc


def _deliver() -> Pdu:
    return Pdu.make(C.deliver_sm, 0, destination_addr="4477", short_message=b"x")


@given(st.lists(st.tuples(st.floats(min_value=0, max_value=500), st.none() | st.integers(0, 60)), max_size=40))
def test_next_deadline_is_the_earliest_response_deadline(steps: list[tuple[float, int | None]]) -> None:
    _, smsc = _pair()
    sent: dict[int, float] = {}
    for offset, answer in steps:
        now = T0 + offset  # times may go backwards: the sorted shortcut must notice
        if answer is not None and sent:
            seq = list(sent)[answer % len(sent)]
            smsc.receive_data(encode(Pdu.make(C.deliver_sm_resp, seq)), now)
            del sent[seq]
        elif smsc.window_free:
            pdu = smsc.send(_deliver(), now)
            sent[pdu.sequence_number] = now + 30.0
        assert smsc.next_deadline == (min(sent.values()) if sent else None)


def test_enquire_link_timer_pauses_while_one_is_in_flight() -> None:
    esme, smsc = _pair(enquire_link_interval=10.0)
    assert smsc.next_deadline == T0 + 10.0
    smsc.handle_timers(T0 + 10.0)  # sends an enquire_link
    assert smsc.next_deadline == T0 + 10.0 + 30.0  # only its response timer runs
    esme.receive_data(smsc.data_to_send(), T0 + 11.0)
    smsc.receive_data(esme.data_to_send(), T0 + 11.0)  # the enquire_link_resp
    assert smsc.next_deadline == T0 + 11.0 + 10.0
    smsc.handle_timers(T0 + 21.0)
    smsc.send(_deliver(), T0 + 22.0)
    assert smsc.next_deadline == T0 + 21.0 + 30.0
    smsc.data_to_send()
    smsc.handle_timers(T0 + 51.0)  # the enquire_link times out; the deliver_sm is still in flight
    # The owner hears of the miss before another enquire_link goes out (it may unbind instead): none is sent
    # in the same call, and the timer is due at once.
    assert smsc.data_to_send() == b""
    assert smsc.next_deadline == T0 + 22.0 + 10.0
    smsc.handle_timers(T0 + 51.0)
    assert decode(smsc.data_to_send()).command_id is C.enquire_link
    assert smsc.next_deadline == T0 + 22.0 + 30.0


@given(st.integers(min_value=1, max_value=5), st.integers(min_value=0, max_value=8))
def test_send_if_allowed_is_send_when_can_send(window: int, attempts: int) -> None:
    _, smsc = _pair(window=window)
    _, twin = _pair(window=window)
    for _ in range(attempts):
        pdu = _deliver()
        expected = twin.send(pdu, T0) if twin.can_send(pdu.command_id) else None
        got = smsc.send_if_allowed(pdu, T0)
        assert got == expected
        assert smsc.data_to_send() == twin.data_to_send()
        assert smsc.next_deadline == twin.next_deadline


def test_verdict_tables_are_slices_of_the_session_table() -> None:
    for (version, role, state, direction, command), status in SESSION_TABLE.items():
        assert verdict_table(version, role)[state, direction, command] is status


def test_verdicts_follow_the_negotiated_version() -> None:
    # A 5.0 SMSC bound by a 3.4 ESME speaks 3.4: broadcast_sm becomes unknown (generic_nack), as the table says.
    smsc = Session(SessionConfig(Role.SMSC, InterfaceVersion.V50, session_init_timeout=None,
                                 enquire_link_interval=None), now=T0)
    esme = Session(SessionConfig(Role.ESME, InterfaceVersion.V34, session_init_timeout=None,
                                 enquire_link_interval=None), now=T0)
    esme.bind(C.bind_transceiver, system_id="e", password="p", now=T0)
    bind = next(e for e in smsc.receive_data(esme.data_to_send(), T0) if isinstance(e, BindRequested))
    smsc.accept_bind(bind.request, system_id="s", now=T0)
    assert smsc.version is InterfaceVersion.V34
    assert smsc.can_send(C.deliver_sm)
    assert not smsc.can_send(C.broadcast_sm_resp)
