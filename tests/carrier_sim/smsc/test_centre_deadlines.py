"""Smsc.next_deadline and handle_timers keep each session's deadline instead of asking every session each time.

The kept deadlines must always give what asking every session gives (a missed or late timer would be a silent
defect: an enquire_link never sent, a response timer that never fires), and an event on one session must not cost
a call per open connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carrier_sim.smpp import session as session_module
from carrier_sim.smpp.codec import HEADER, encode
from carrier_sim.smpp.constants import CommandId as C
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import DelayDistribution, Smsc, SmscConfig
from carrier_sim.testing.smpp_strategies import pdus

T0 = 1_700_000_000.0


def asked_of_every_session(smsc: Smsc) -> float | None:
    """What next_deadline was before it kept deadlines: the earliest of the store, the timers, every session."""
    candidates = [d for d in (smsc.store.next_deadline,) if d is not None]
    if smsc._timers:
        candidates.append(smsc._timers[0].at)
    candidates += [d for c in smsc.connections.values() if (d := c.session.next_deadline) is not None]
    return min(candidates) if candidates else None


def smsc_for_timers() -> Smsc:
    # Short timers of every kind, so that a few steps of time reach them: session_init, enquire_link, response
    # timers on receipts, inactivity, delayed receipts.
    return Smsc(SmscConfig(accounts=(Account("esme", "pw", max_binds=3),), window=3, peer_window=3,
                           response_timeout=2.0, enquire_link_interval=3.0, session_init_timeout=4.0,
                           inactivity_timeout=9.0, dlr_delay=DelayDistribution(0.0, 2.5), enquire_link_misses=2))


def bind(seq: int) -> bytes:
    return encode(Pdu.make(C.bind_transceiver, seq, system_id="esme", password="pw", interface_version=0x34))


def submit(seq: int, destination: str) -> bytes:
    return encode(Pdu.make(C.submit_sm, seq, source_addr="Svc", destination_addr=destination,
                           registered_delivery=1, short_message=b"code 1234"))


def answers(data: bytes) -> bytes:
    """The peer's answer to every request in what the SMSC wrote (a deliver_sm_resp, an enquire_link_resp...)."""
    out = bytearray()
    pos = 0
    while pos + 16 <= len(data):
        length, command_id, _, seq = HEADER.unpack_from(data, pos)
        command = C(command_id) if command_id in C._value2member_map_ else None
        if command is not None and command.response is not None:
            out += encode(Pdu.make(command.response, seq)) if command is not C.deliver_sm else encode(
                Pdu.make(C.deliver_sm_resp, seq))
        pos += length
    return bytes(out)


_step = st.one_of(
    st.tuples(st.just("connect")),
    st.tuples(st.just("bind"), st.integers(0, 3)),
    st.tuples(st.just("submit"), st.integers(0, 3), st.sampled_from(["447700900001", "447700900002", "4915550"])),
    st.tuples(st.just("pdu"), st.integers(0, 3), pdus(C.enquire_link, C.query_sm, C.unbind, C.deliver_sm_resp,
                                                       C.submit_sm, C.enquire_link_resp, C.generic_nack)),
    st.tuples(st.just("garbage"), st.integers(0, 3), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("answer"), st.integers(0, 3)),
    st.tuples(st.just("lost"), st.integers(0, 3)),
    st.tuples(st.just("wait"), st.floats(0.0, 5.0)),
    st.tuples(st.just("mo"), st.sampled_from(["447700900001", "12345"])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_step, min_size=1, max_size=60))
def test_the_kept_deadline_is_always_what_asking_every_session_gives(steps: list[tuple[object, ...]]) -> None:
    smsc = smsc_for_timers()
    now = T0
    conns = [smsc.connect("peer-0", now)]
    written: dict[int, bytes] = {}
    seq = 100
    for step in steps:
        kind = step[0]
        if kind == "connect":
            conns.append(smsc.connect(f"peer-{len(conns)}", now))
        elif kind == "wait":
            assert isinstance(step[1], float)
            now += step[1]
            deadline = smsc.next_deadline
            if deadline is not None and deadline <= now:
                smsc.handle_timers(now)
        elif kind == "mo":
            smsc.inject_mo(str(step[1]), "447700900001", "hello", now)
        else:
            conn = conns[int(step[1]) % len(conns)]  # type: ignore[call-overload]
            seq += 1
            if kind == "bind":
                conn.receive_data(bind(seq), now)
            elif kind == "submit":
                conn.receive_data(submit(seq, str(step[2])), now)
            elif kind == "pdu":
                pdu = step[2]
                assert isinstance(pdu, Pdu)
                conn.receive_data(encode(pdu), now)
            elif kind == "garbage":
                conn.receive_data(bytes(step[2]), now)  # type: ignore[call-overload]
            elif kind == "answer":
                conn.receive_data(answers(written.pop(conn.connection_id, b"")), now)
            elif kind == "lost":
                conn.connection_lost(now)
        for c in smsc.dirty_connections():
            written[c.connection_id] = written.get(c.connection_id, b"") + c.data_to_send()
        assert smsc.next_deadline == asked_of_every_session(smsc), step


@contextmanager
def sessions_asked() -> Iterator[list[int]]:
    """Counts reads of Session.next_deadline while the block runs."""
    calls = [0]
    original = session_module.Session.next_deadline
    assert isinstance(original, property)
    assert original.fget is not None
    fget = original.fget

    def counted(self: session_module.Session) -> float | None:
        calls[0] += 1
        return fget(self)

    session_module.Session.next_deadline = property(counted)
    try:
        yield calls
    finally:
        session_module.Session.next_deadline = original


@pytest.mark.parametrize("idle", [10, 1000])
def test_an_event_on_one_session_does_not_ask_every_open_connection(idle: int) -> None:
    # 1,000 connections that never bind (an attacker's, held for session_init_timeout) made every event on a
    # healthy session cost ~8 ms: next_deadline asked each of them, twice per event. Counted, not timed.
    smsc = smsc_for_timers()
    now = T0
    healthy = smsc.connect("healthy", now)
    healthy.receive_data(bind(1), now)
    for n in range(idle):
        smsc.connect(f"idle-{n}", now)
    assert smsc.next_deadline == asked_of_every_session(smsc)  # the new connections are read once, when new
    for seq in range(2, 12):
        now += 0.1
        with sessions_asked() as calls:
            healthy.receive_data(encode(Pdu.make(C.enquire_link, seq)), now)
            smsc.dirty_connections()
            deadline = smsc.next_deadline
            if deadline is not None and deadline <= now:
                smsc.handle_timers(now)
            assert smsc.next_deadline is not None  # what the server asks again to re-arm its timer
        assert calls[0] <= 4, calls[0]
    assert smsc.next_deadline == asked_of_every_session(smsc)


def test_idle_connections_still_time_out_at_session_init() -> None:
    smsc = smsc_for_timers()
    idle = [smsc.connect(f"idle-{n}", T0 + n) for n in range(5)]
    assert smsc.next_deadline == T0 + 4.0  # the first one's session_init_timeout
    smsc.handle_timers(T0 + 6.0)
    assert [c.closed for c in idle] == [True, True, True, False, False]
    assert smsc.next_deadline == T0 + 3 + 4.0
    smsc.handle_timers(T0 + 9.0)
    assert all(c.closed for c in idle)
    assert smsc.next_deadline is None or smsc.next_deadline == asked_of_every_session(smsc)
