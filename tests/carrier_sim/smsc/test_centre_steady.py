"""The steady path (Smsc._take_steady) against the general one, on arbitrary traffic cut at arbitrary places.

Two SMSCs get the same reads at the same times, one with the steady path off. Everything observable must be the
same: every octet each writes back, after every read and every timer; the stats; each session's verdicts; the
next deadline. The traffic mixes what the steady path takes (submit_sm, deliver_sm_resp to receipts and MO) with
what it must leave to the general path (a bad time, a message over the peer's window, a response nobody awaits,
one answered twice or with an error, enquire_link, garbage, an untrusted command_length, a submit_sm with a
non-zero status...), and the reads are cut anywhere, through headers too.
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carrier_sim.smpp.codec import HEADER, decode, encode
from carrier_sim.smpp.constants import CommandId, InterfaceVersion
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.accounts import Account, MoDelivery
from carrier_sim.smsc.centre import Smsc, SmscConfig, SmscConnection
from carrier_sim.smsc.subscribers import Condition, SubscriberRegistry

C = CommandId
T0 = 1_700_000_000.0
_SEQ = struct.Struct(">I")

_submit = st.fixed_dictionaries(
    {
        "destination_addr": st.sampled_from(["447700900001", "447700900002", "447700900003", "12345"]),
        "source_addr": st.sampled_from(["VerifySvc", "447700900999"]),
        "registered_delivery": st.sampled_from([0, 1, 2, 0x11, 0x10]),
        "validity_period": st.sampled_from(["", "000000001000000R", "not a time!!!!!R", "991231235959000+"]),
        "schedule_delivery_time": st.sampled_from(["", "", "", "000000000002000R"]),
        "replace_if_present_flag": st.sampled_from([0, 0, 0, 1]),
        "data_coding": st.sampled_from([0, 0, 8, 4]),
        "esm_class": st.sampled_from([0, 0, 0, 0x40]),
        "short_message": st.sampled_from([b"hello", b"x" * 160, b"y" * 161, b"\x05\x00\x03\x01\x02\x01hi", b""]),
    },
    optional={"tlvs": st.sampled_from([{"user_message_reference": 7}, {"message_payload": b"long text"}])},
)

#: The ordinary message the steady path is for (the others above mostly are not).
_plain = st.fixed_dictionaries({
    "destination_addr": st.sampled_from(["447700900001", "447700900002", "447700900003"]),
    "registered_delivery": st.sampled_from([1, 1, 0, 0x11]),
    "validity_period": st.sampled_from(["", "000000001000000R"]),
    "short_message": st.sampled_from([b"hello", b"x" * 160]),
})
_plain_answer = st.tuples(st.just("answer"), st.integers(0, 30), st.just(0), st.just("ok"))

_step = st.one_of(
    st.tuples(st.just("submit"), _plain, st.just("next"), st.just(0)),
    st.tuples(st.just("submit"), _plain, st.just("next"), st.just(0)),
    st.tuples(st.just("submit"), _plain, st.just("next"), st.just(0)),
    st.tuples(st.just("submit"), _submit, st.sampled_from(["next", "next", "next", "zero", "repeat"]),
              st.sampled_from([0, 0, 0, 0, 8])),
    _plain_answer,
    _plain_answer,
    st.tuples(st.just("answer"), st.integers(0, 30), st.sampled_from([0, 0, 0, 0x58, 0x08]),
              st.sampled_from(["ok", "ok", "ok", "twice", "stranger", "wrong_command", "body"])),
    st.tuples(st.just("mo")),
    st.tuples(st.just("enquire_link")),
    st.tuples(st.just("garbage"), st.sampled_from([b"\x00\x00\x00\x10\x00\x00\x00\x99\x00\x00\x00\x00\x00\x00\x00\x01",
                                                   b"\x00\x00\x00\x05\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x02"])),
    st.tuples(st.just("read"), st.integers(0, 400)),
    st.tuples(st.just("read"), st.integers(0, 4000)),
    st.tuples(st.just("tick"), st.sampled_from([0.0, 0.001, 0.5, 3.0, 31.0])),
)

_configs = st.sampled_from([
    {"window": 100, "peer_window": 100},
    {"window": 3, "peer_window": 4},
    {"window": 100, "peer_window": 2},
    {"window": 10, "peer_window": 10, "store_capacity": 5},
    {"window": 10, "peer_window": 10, "interface_version": InterfaceVersion.V50},
    {"window": 10, "peer_window": 10, "mo_delivery": MoDelivery.DATA_SM},
    {"window": 10, "peer_window": 10, "throughput": 5.0},
    {"window": 10, "peer_window": 10, "source_allow": ("Verify.*",)},
    {"window": 10, "peer_window": 10, "absent": True},
])


class _Pair:
    """The same traffic into two SMSCs, one with the steady path off."""

    def __init__(self, config: dict[str, object]) -> None:
        config = dict(config)
        account = Account("esme", "pw", mo_delivery=config.pop("mo_delivery", MoDelivery.DELIVER_SM),  # type: ignore[arg-type]
                          throughput=config.pop("throughput", 0.0),  # type: ignore[arg-type]
                          source_allow=config.pop("source_allow", ()), routes=("12345",))  # type: ignore[arg-type]
        absent = config.pop("absent", False)
        self.smscs = []
        self.conns: list[SmscConnection] = []
        for steady in (True, False):
            subscribers = SubscriberRegistry()
            if absent:
                subscribers.set("447700900003", Condition.ABSENT)
            smsc = Smsc(SmscConfig(accounts=(account,), **config), subscribers)  # type: ignore[arg-type]
            smsc._steady = steady and smsc._steady
            self.smscs.append(smsc)
            self.conns.append(smsc.connect("127.0.0.1:40000", T0))
        self.now = T0
        self.pending = bytearray()
        self.seq = 1
        #: Requests of the SMSC's seen on the wire (from the reference's output), oldest first: (seq, command).
        self.requests: list[tuple[int, int]] = []
        self.steady_reads = 0

    def feed(self, data: bytes | bytearray) -> None:
        outputs = []
        for smsc, conn in zip(self.smscs, self.conns, strict=True):
            conn.receive_data(bytes(data), self.now)
            outputs.append(self._flush(smsc))
        assert outputs[0] == outputs[1]
        self._learn(outputs[1])

    def tick(self, seconds: float) -> None:
        self.now += seconds
        outputs = []
        for smsc in self.smscs:
            deadline = smsc.next_deadline
            if deadline is not None and deadline <= self.now:
                smsc.handle_timers(self.now)
            outputs.append(self._flush(smsc))
        assert outputs[0] == outputs[1]
        self._learn(outputs[1])

    def _flush(self, smsc: Smsc) -> bytes:
        return b"".join(c.data_to_send() for c in smsc.dirty_connections())

    def _learn(self, out: bytes) -> None:
        pos = 0
        while pos + 16 <= len(out):
            length, command_id, _, seq = HEADER.unpack_from(out, pos)
            if not command_id & 0x80000000:
                self.requests.append((seq, command_id))
            pos += max(16, length)

    def same(self) -> None:
        a, b = self.smscs
        assert a.stats.to_json() == b.stats.to_json()
        assert a.verdicts() == b.verdicts()
        assert a.next_deadline == b.next_deadline
        assert [c.session.state for c in self.conns] == [self.conns[1].session.state] * 2


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=_configs, steps=st.lists(_step, max_size=80), bind_version=st.sampled_from([0x34, 0x34, 0x50, 0x33]))
def test_the_steady_path_changes_nothing_observable(config: dict[str, object], steps: list[tuple[object, ...]],
                                                    bind_version: int) -> None:
    pair = _Pair(config)
    pair.feed(encode(Pdu.make(C.bind_transceiver, 1, system_id="esme", password="pw",
                              interface_version=bind_version)))
    for step in steps:
        kind = step[0]
        if kind == "submit":
            fields, seq_kind, status = step[1], step[2], step[3]
            assert isinstance(fields, dict)
            if seq_kind == "next":
                pair.seq += 1
            seq = 0 if seq_kind == "zero" else pair.seq
            try:
                frame = bytearray(encode(Pdu.make(C.submit_sm, seq, **fields)))
            except Exception:  # a combination the codec will not write (e.g. esm_class/UDH mismatch is fine)
                continue
            HEADER.pack_into(frame, 0, len(frame), int(C.submit_sm), int(status), seq)  # type: ignore[arg-type]
            pair.pending += frame
        elif kind == "answer":
            index, status, how = step[1], step[2], step[3]
            assert isinstance(index, int)
            if not pair.requests and how != "stranger":
                continue
            seq, command = pair.requests[index % len(pair.requests)] if pair.requests else (999, int(C.deliver_sm))
            if how == "stranger":
                seq = 0x7000_0000
            response = int(command) | 0x80000000
            if how == "wrong_command":
                response = int(C.data_sm_resp) if command == int(C.deliver_sm) else int(C.deliver_sm_resp)
            body = b"\x00" if how != "body" else b"junk\x00"
            frame = HEADER.pack(16 + len(body), response, int(status), seq) + body  # type: ignore[arg-type]
            pair.pending += frame * (2 if how == "twice" else 1)
        elif kind == "mo":
            for smsc in pair.smscs:
                smsc.inject_mo("447700900001", "12345", "STOP", pair.now)
            pair.tick(0.0)
        elif kind == "enquire_link":
            pair.seq += 1
            pair.pending += encode(Pdu.make(C.enquire_link, pair.seq))
        elif kind == "garbage":
            pair.pending += step[1]  # type: ignore[operator]
        elif kind == "read":
            cut = step[1]
            assert isinstance(cut, int)
            cut = min(cut, len(pair.pending))
            pair.feed(pair.pending[:cut])
            del pair.pending[:cut]
            pair.tick(0.0)
        else:
            seconds = step[1]
            assert isinstance(seconds, float)
            pair.tick(seconds)
        pair.same()
    pair.feed(pair.pending)
    pair.tick(0.0)
    pair.tick(40.0)
    pair.same()


def test_a_read_of_plain_traffic_takes_the_steady_path() -> None:
    # The property above would hold trivially if the steady path were never taken: make sure it is, for the
    # traffic it is for -- a window of submits, then the answers to their receipts.
    smsc = Smsc(SmscConfig(accounts=(Account("esme", "pw"),), window=100, peer_window=100))
    conn = smsc.connect("127.0.0.1:40000", T0)
    conn.receive_data(encode(Pdu.make(C.bind_transceiver, 1, system_id="esme", password="pw",
                                      interface_version=0x34)), T0)
    taken: list[bool] = []
    take = smsc._take_steady

    def spy(c: SmscConnection, frames: list[bytes], now: float) -> bool:
        taken.append(take(c, frames, now))
        return taken[-1]

    smsc._take_steady = spy  # type: ignore[method-assign]
    smsc.handle_timers(T0)
    b"".join(c.data_to_send() for c in smsc.dirty_connections())
    batch = b"".join(encode(Pdu.make(C.submit_sm, seq, destination_addr="447700900001", short_message=b"hi",
                                     registered_delivery=1)) for seq in range(2, 12))
    conn.receive_data(batch, T0)
    smsc.handle_timers(T0)
    out = b"".join(c.data_to_send() for c in smsc.dirty_connections())
    answers = bytearray()
    pos = 0
    while pos < len(out):
        length, command_id, _, seq = HEADER.unpack_from(out, pos)
        if command_id == int(C.deliver_sm):
            answers += encode(Pdu.make(C.deliver_sm_resp, seq))
        pos += length
    conn.receive_data(bytes(answers), T0 + 0.01)
    assert taken == [True, True]
    assert smsc.stats.submitted == 10
    assert smsc.stats.receipts_acked == 10
    assert conn.oracle.results_by_name["window"].exercised == 10
    assert conn.oracle.results_by_name["response_echo"].exercised == 10


def _plain_submits(first: int, count: int, **fields: object) -> bytes:
    values: dict[str, object] = {"destination_addr": "447700900001", "short_message": b"hi", "registered_delivery": 1}
    values.update(fields)
    return b"".join(encode(Pdu.make(C.submit_sm, seq, **values)) for seq in range(first, first + count))


def _bound_pair(**config: object) -> _Pair:
    pair = _Pair({"window": 100, "peer_window": 100, **config})
    pair.feed(encode(Pdu.make(C.bind_transceiver, 1, system_id="esme", password="pw", interface_version=0x34)))
    return pair


def _answers(pair: _Pair, status: int = 0) -> bytes:
    """deliver_sm_resp (or data_sm_resp) to every request of the SMSC's seen so far, once."""
    out = b"".join(HEADER.pack(17, command | 0x80000000, status, seq) + b"\x00" for seq, command in pair.requests)
    pair.requests.clear()
    return out


def test_a_read_over_the_peers_window_is_judged_as_the_general_path_judges_it() -> None:
    # Three submits in one read against a peer window of 2: the third went over. The steady path must leave
    # the read to the general one, which knows which request it was; a steady path that judged the read itself
    # would see no violation at all (nothing is owed on it).
    pair = _bound_pair(peer_window=2)
    pair.feed(_plain_submits(2, 3))
    pair.tick(0.0)
    pair.same()
    window = pair.conns[0].oracle.results_by_name["window"]
    assert (window.violations, window.exercised) == (1, 3)
    pair.feed(_plain_submits(5, 2))
    pair.same()


def test_a_read_that_fills_the_store_is_refused_as_the_general_path_refuses_it() -> None:
    pair = _bound_pair(store_capacity=3)
    pair.feed(_plain_submits(2, 2, registered_delivery=0, schedule_delivery_time="000000000100000R"))
    pair.feed(_plain_submits(4, 2, registered_delivery=0, schedule_delivery_time="000000000100000R"))
    pair.same()
    assert pair.smscs[0].stats.rejected == 1


def test_receipts_mo_and_intermediate_notifications_come_out_the_same() -> None:
    pair = _bound_pair(window=4, mo_delivery=MoDelivery.DATA_SM)
    pair.feed(_plain_submits(2, 3, registered_delivery=0x11))
    pair.tick(0.0)
    for smsc in pair.smscs:
        smsc.inject_mo("447700900001", "12345", "STOP", pair.now)
    pair.tick(0.0)
    # Answers to everything (receipts, intermediate notifications, the MO as data_sm_resp) with more submits.
    pair.feed(_answers(pair) + _plain_submits(5, 2))
    pair.tick(0.0)
    pair.feed(_answers(pair, 0x58))  # ESME_RTHROTTLED: retried later
    pair.tick(0.0)
    pair.tick(5.0)
    pair.same()
    # A deliver_sm_resp to a data_sm is the wrong response: the general path reports it, so must the pair.
    for smsc in pair.smscs:
        smsc.inject_mo("447700900001", "12345", "STOP again", pair.now)
    pair.tick(0.0)
    wrong = b"".join(HEADER.pack(17, int(C.deliver_sm_resp), 0, seq) + b"\x00" for seq, _ in pair.requests)
    pair.feed(wrong)
    pair.same()
    assert pair.conns[0].oracle.results_by_name["response_echo"].violations >= 1


@given(status=st.integers(0, 0xFFFFFFFF), seq=st.integers(0, 0xFFFFFFFF))
def test_the_usual_deliver_sm_resp_is_what_the_decoder_gives(status: int, seq: int) -> None:
    # _take_steady builds this PDU itself rather than decode it; it must be the decoder's.
    frame = HEADER.pack(17, int(C.deliver_sm_resp), status, seq) + b"\x00"
    assert decode(frame) == Pdu(C.deliver_sm_resp, seq, status, {"message_id": ""}, ())


def _write_order(steady: bool) -> list[tuple[int, bytes]]:
    smsc = Smsc(SmscConfig(accounts=(Account("esme", "pw"),)))
    smsc._steady = steady
    rx = smsc.connect("peer", T0)  # connection 1
    rx.receive_data(encode(Pdu.make(C.bind_receiver, 1, system_id="esme", password="pw", interface_version=0x34)), T0)
    for _ in range(7):  # 2..8 come and go, so that the transmitter, 9, shares 1's slot in a small set
        smsc.connect("other", T0).connection_lost(T0)
    tx = smsc.connect("peer", T0)
    tx.receive_data(encode(Pdu.make(C.bind_transmitter, 1, system_id="esme", password="pw",
                                    interface_version=0x34)), T0)
    smsc.handle_timers(T0)
    for conn in smsc.dirty_connections():
        conn.data_to_send()
    tx.receive_data(encode(Pdu.make(C.submit_sm, 2, destination_addr="447700900001", short_message=b"hi",
                                    registered_delivery=0x10)), T0)
    return [(conn.connection_id, conn.data_to_send()) for conn in smsc.dirty_connections()]


def test_connections_are_written_in_the_same_order_as_on_the_general_path() -> None:
    # An intermediate notification to a receiver bind while its transmitter's submit_sm_resp is written: the
    # server writes the connections in the order the SMSC first marked them, which the pcap shows. (A review found
    # the steady path marking its own connection last.)
    steady, general = _write_order(True), _write_order(False)
    assert steady == general
    assert [cid for cid, _ in general] == [9, 1]
