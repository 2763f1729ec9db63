"""The steady path against the general one with several binds of one system_id (transmitter, receiver,
transceiver) whose connection ids share a slot of a small set, so that the order in which connections are marked
dirty shows in the order the server writes them. Per connection, every octet; across connections, the write
order; and the session's bookkeeping, field by field. (Written from a review that found the write order differ.)"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carrier_sim.smpp.codec import HEADER, encode
from carrier_sim.smpp.constants import CommandId as C
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.receipt import SPEC_V34, TERSE
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig
from carrier_sim.smsc.faults import FaultPlan

T0 = 1_700_000_000.0

_tlvs = st.sampled_from([{}, {}, {"user_message_reference": 7}, {"message_payload": b"long text"},
                         {"sar_msg_ref_num": 5, "sar_total_segments": 2, "sar_segment_seqnum": 1},
                         {"sar_msg_ref_num": 5, "sar_total_segments": 0, "sar_segment_seqnum": 3}])
_submit = st.fixed_dictionaries({
    "destination_addr": st.sampled_from(["447700900001", "447700900002"]),
    "source_addr": st.sampled_from(["VerifySvc", "447700900999"]),
    "registered_delivery": st.sampled_from([0, 1, 0x10, 0x11, 0x11]),
    "replace_if_present_flag": st.sampled_from([0, 0, 1]),
    "short_message": st.sampled_from([b"hello", b"x" * 161, b""]),
    "schedule_delivery_time": st.sampled_from(["", "", "000000000002000R"]),
})
_step = st.one_of(
    st.tuples(st.just("submit"), st.sampled_from([0, 2]), _submit, _tlvs,
              st.sampled_from(["next", "next", "zero", "high", "repeat"])),
    st.tuples(st.just("answer"), st.integers(0, 30), st.sampled_from([0, 0, 0, 0x58, 0x08]), st.booleans()),
    st.tuples(st.just("read"), st.integers(0, 2), st.integers(0, 600)),
    st.tuples(st.just("tick"), st.sampled_from([0.0, 0.001, 0.5, 3.0, 31.0])),
)
_configs = st.sampled_from([
    {"window": 100, "peer_window": 100},
    {"window": 1, "peer_window": 10},
    {"window": 2, "peer_window": 3, "faults": FaultPlan(unbind_with_full_window=0.5)},
    {"window": 10, "peer_window": 10, "dialect": SPEC_V34},
    {"window": 10, "peer_window": 10, "dialect": TERSE, "store_capacity": 4},
    {"window": 10, "peer_window": 10, "inactivity_timeout": 2.0, "enquire_link_interval": 1.0},
])
BINDS = [C.bind_transmitter, C.bind_receiver, C.bind_transceiver]


class Multi:
    def __init__(self, config):
        self.smscs, self.conns = [], []
        for steady in (True, False):
            smsc = Smsc(SmscConfig(accounts=(Account("esme", "pw"),), **config))
            smsc._steady = steady and smsc._steady
            conns = []
            # ids 1, 9, 17: the same slot of an 8-slot set
            for i in range(1, 18):
                c = smsc.connect(f"p{i}", T0)
                if i in (1, 9, 17):
                    conns.append(c)
                else:
                    c.connection_lost(T0)
            self.smscs.append(smsc)
            self.conns.append(conns)
        self.now = T0
        self.pending = [bytearray() for _ in range(3)]
        self.seq = [1, 1, 1]
        self.requests = [[], [], []]
        for k, bind in enumerate(BINDS):
            self.pending[k] += encode(Pdu.make(bind, 1, system_id="esme", password="pw", interface_version=0x34))
            self.read(k, 10**6)

    def _flush(self, smsc):
        out = {}
        order = []
        for c in smsc.dirty_connections():
            out[c.connection_id] = out.get(c.connection_id, b"") + c.data_to_send()
            order.append(c.connection_id)
        return out, order

    def _compare(self):
        outs = [self._flush(s) for s in self.smscs]
        (a, oa), (b, ob) = outs
        a = {k: v for k, v in a.items() if v}
        b = {k: v for k, v in b.items() if v}
        assert a == b, (a, b)
        ra = [x for x in oa if x in a]
        rb = [x for x in ob if x in b]
        assert ra == rb, f"write order across connections: steady {ra} general {rb}"
        for cid, data in b.items():
            k = [1, 9, 17].index(cid)
            pos = 0
            while pos + 16 <= len(data):
                length, command_id, _, seq = HEADER.unpack_from(data, pos)
                if not command_id & 0x80000000:
                    self.requests[k].append((seq, command_id))
                pos += max(16, length)

    def read(self, k, cut):
        cut = min(cut, len(self.pending[k]))
        for conns in self.conns:
            conns[k].receive_data(bytes(self.pending[k][:cut]), self.now)
        del self.pending[k][:cut]
        self._compare()

    def tick(self, seconds):
        self.now += seconds
        for smsc in self.smscs:
            d = smsc.next_deadline
            if d is not None and d <= self.now:
                smsc.handle_timers(self.now)
        self._compare()

    def same(self):
        a, b = self.smscs
        assert a.stats.to_json() == b.stats.to_json()
        assert a.verdicts() == b.verdicts()
        assert a.next_deadline == b.next_deadline
        for ca, cb in zip(*self.conns, strict=True):
            sa, sb = ca.session, cb.session
            assert sa.state == sb.state
            for attr in ("_last_traffic", "_last_activity", "_now", "_owed", "_owed_windowed", "_in_flight_windowed",
                         "_next_seq", "_enquire_links_in_flight", "_in_flight_sorted", "_last_deadline"):
                assert getattr(sa, attr) == getattr(sb, attr), attr
            assert list(sa._in_flight) == list(sb._in_flight)
            assert list(sa._timed_out) == list(sb._timed_out)
            assert sa._framer.buffered == sb._framer.buffered
            assert ca._pending_receipts == cb._pending_receipts
            assert len(ca.outbox) == len(cb.outbox)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(config=_configs, steps=st.lists(_step, max_size=60))
def test_several_binds_see_the_same_octets_in_the_same_order(config, steps):
    m = Multi(config)
    for step in steps:
        kind = step[0]
        if kind == "submit":
            _, k, fields, tlvs, seq_kind = step
            if seq_kind == "next":
                m.seq[k] += 1
            seq = {"zero": 0, "high": 0x80000000 + m.seq[k]}.get(seq_kind, m.seq[k])
            try:
                m.pending[k] += encode(Pdu.make(C.submit_sm, seq, tlvs=tlvs, **fields))
            except Exception:
                continue
        elif kind == "answer":
            _, index, status, rx = step
            k = 1 if rx else 2
            if not m.requests[k]:
                continue
            seq, command = m.requests[k].pop(index % len(m.requests[k]))
            if command == int(C.unbind):
                m.pending[k] += HEADER.pack(16, command | 0x80000000, 0, seq)
            else:
                m.pending[k] += HEADER.pack(17, command | 0x80000000, status, seq) + b"\x00"
        elif kind == "read":
            m.read(step[1], step[2])
        else:
            m.tick(step[1])
        m.same()
    for k in range(3):
        m.read(k, 10**6)
    m.tick(0.0)
    m.tick(40.0)
    m.same()
