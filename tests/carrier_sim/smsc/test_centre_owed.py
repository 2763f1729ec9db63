"""What the SMSC owes and has not done, as its stats say it: receipts not sent (due, held, queued), messages not
final, messages cancelled -- and receipts counted as sent only once they are handed to a session for the wire.

A standalone SMSC stopped with receipts still owed must say so in ``/stats`` and its report: before, SIGTERM a
second after 20 acknowledged submits asking for receipts with a 5 s receipt delay left a report reading
``submitted 20, delivered 20`` and nothing about the 20 receipts never sent, while ``receipts_sent`` counted
receipts when they were queued, not when they went (47,115 "sent" beside 31,653 deliver_sm in the capture).

The ESME here is raw octets against a :class:`~carrier_sim.smsc.centre.SmscConnection`, as the asyncio server
feeds it, and (for the stop) a real socket against :class:`~carrier_sim.net.smsc_server.SmscServer`.
"""

from __future__ import annotations

import asyncio

from hypothesis import example, given, settings
from hypothesis import strategies as st

from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.report.smsc_report import smsc_report
from carrier_sim.smpp.codec import HEADER, HEADER_SIZE, decode, encode
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.framing import decode_stream
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import DelayDistribution, Owed, Smsc, SmscConfig, SmscConnection, SmscStats
from carrier_sim.smsc.subscribers import Condition, SubscriberRegistry

C = CommandId
S = CommandStatus
T0 = 1_700_000_000.0
SOURCE = "12345"
IN_10_S = "000000000010000R"


class Esme:
    """One raw ESME on one SMSC connection: writes requests, reads what the SMSC wrote, answers deliver_sm as told."""

    def __init__(self, smsc: Smsc, command: CommandId = C.bind_transceiver, *, answers: bool = True,
                 answer_status: int = S.ESME_ROK, now: float = T0) -> None:
        self.smsc = smsc
        self.now = now
        self.answers = answers
        self.answer_status = answer_status
        self.seq = 1
        self.conn: SmscConnection = smsc.connect("esme:1", now)
        self.seen: list[Pdu] = []
        self.write(Pdu.make(command, 0, system_id="esme", password="pw", interface_version=0x34))
        # (Receipts held for the system_id may follow the bind_resp.)
        assert self.seen[0].command_id is command.response
        assert self.seen[0].command_status == S.ESME_ROK

    def write(self, *pdus: Pdu) -> None:
        """Requests in one read (numbered here), then whatever follows from them."""
        data = b""
        for pdu in pdus:
            data += encode(pdu.with_sequence(self.seq))
            self.seq += 1
        self.feed(data)

    def feed(self, data: bytes) -> None:
        """Octets in one read, then the SMSC's timers due now, and the ESME's answers until nothing moves."""
        while True:
            if data:
                self.conn.receive_data(data, self.now)
            deadline = self.smsc.next_deadline
            while deadline is not None and deadline <= self.now:
                self.smsc.handle_timers(self.now)
                deadline = self.smsc.next_deadline
            out = [p for p in decode_stream(self.conn.data_to_send()) if isinstance(p, Pdu)]
            self.seen += out
            data = b"".join(encode(Pdu.make(C.deliver_sm_resp, p.sequence_number, self.answer_status)
                                   if p.command_id is C.deliver_sm else p.response())
                            for p in out if self.answers and p.command_id in (C.deliver_sm, C.unbind))
            if not data:
                return

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.feed(b"")

    def submit(self, count: int = 1, **fields: object) -> None:
        fields.setdefault("registered_delivery", 1)
        self.write(*(Pdu.make(C.submit_sm, 0, source_addr=SOURCE, destination_addr=f"4477009{n:05d}",
                              short_message=b"x", **fields) for n in range(count)))  # type: ignore[arg-type]

    def receipts(self) -> list[Pdu]:
        return [p for p in self.seen if p.command_id is C.deliver_sm]

    def hang_up(self) -> None:
        self.conn.connection_lost(self.now)


def smsc(subscribers: SubscriberRegistry | None = None, **config: object) -> Smsc:
    return Smsc(SmscConfig(accounts=(Account("esme", "pw"),), **config), subscribers)  # type: ignore[arg-type]


def counts(smsc: Smsc, *names: str) -> tuple[int, ...]:
    stats = smsc.stats.to_json()
    return tuple(stats[name] for name in names)


# ---------------------------------------------------------------------------------------------- what is owed


def test_receipts_still_in_their_delay_when_the_smsc_stops_are_reported_unsent() -> None:
    # The review's case: 20 acknowledged submits asking for receipts, a 5 s receipt delay, the stop a second later
    # (the ESME answers the SMSC's unbind). Before, the stats said submitted 20, delivered 20, and nothing else.
    centre = smsc(dlr_delay=DelayDistribution(5.0, 5.0), peer_window=20)
    esme = Esme(centre)
    esme.submit(20)
    assert [p.command_status for p in esme.seen if p.command_id is C.submit_sm_resp] == [0] * 20
    esme.advance(1.0)
    centre.unbind_all(esme.now)
    esme.feed(b"")
    assert esme.conn.closed
    assert not centre.connections
    assert counts(centre, "submitted", "delivered", "receipts_sent", "receipts_unsent", "pending") == (20, 20, 0, 20, 0)
    assert centre.owed() == Owed(receipts_due=20)
    assert esme.receipts() == []


def test_a_receipt_held_for_a_system_id_with_no_receiver_is_owed() -> None:
    centre = smsc()
    esme = Esme(centre, C.bind_transmitter)
    esme.submit()
    assert centre.owed() == Owed(receipts_held=1)
    assert counts(centre, "receipts_sent", "receipts_unsent") == (0, 1)
    Esme(centre, C.bind_receiver)  # takes it, and answers it
    assert counts(centre, "receipts_sent", "receipts_acked", "receipts_unsent") == (1, 1, 0)


def test_receipts_queued_behind_the_smscs_full_window_are_owed_and_not_counted_sent() -> None:
    # Window 1 and an ESME that reads receipts but never answers: one receipt in flight, two queued behind it.
    # Before, all three counted in receipts_sent the moment they were made.
    centre = smsc(window=1)
    esme = Esme(centre, answers=False)
    esme.submit(3)
    assert len(esme.receipts()) == 1
    assert centre.stats.receipts_sent == 1
    assert centre.owed() == Owed(receipts_queued=2)
    assert counts(centre, "receipts_sent", "receipts_unsent") == (1, 2)
    # The ESME hangs up: the one it left unanswered and the two never sent are held for the next receiver bind.
    esme.hang_up()
    assert centre.owed() == Owed(receipts_held=3)
    assert counts(centre, "receipts_sent", "receipts_unsent") == (1, 3)
    # The next bind answers: each receipt counted sent once -- the two that never went, when they go; the one
    # that went before, not again.
    again = Esme(centre, now=esme.now)
    assert len(again.receipts()) == 3
    assert counts(centre, "receipts_sent", "receipts_acked", "receipts_unsent") == (3, 3, 0)


def test_a_receipt_waiting_for_its_retry_is_owed() -> None:
    centre = smsc()
    esme = Esme(centre, answer_status=S.ESME_RX_T_APPN)  # "try later": sent again after 1 s
    esme.submit()
    assert counts(centre, "receipts_sent", "receipts_retried", "receipts_unsent") == (1, 1, 1)
    assert centre.owed() == Owed(receipts_due=1)
    esme.answer_status = S.ESME_ROK
    esme.advance(1.0)
    assert counts(centre, "receipts_sent", "receipts_acked", "receipts_unsent") == (1, 1, 0)


def test_messages_not_final_are_pending_and_cancelled_ones_are_counted() -> None:
    centre = smsc()
    esme = Esme(centre)
    esme.submit(3, schedule_delivery_time=IN_10_S)
    assert counts(centre, "submitted", "pending", "delivered", "cancelled") == (3, 3, 0, 0)
    ids = [str(p["message_id"]) for p in esme.seen if p.command_id is C.submit_sm_resp]
    esme.write(Pdu.make(C.cancel_sm, 0, message_id=ids[0], source_addr=SOURCE))
    assert esme.seen[-1].command_id is C.cancel_sm_resp
    assert esme.seen[-1].command_status == S.ESME_ROK
    assert counts(centre, "pending", "cancelled") == (2, 1)
    esme.advance(10.0)
    assert counts(centre, "pending", "delivered", "cancelled", "receipts_sent", "receipts_unsent") == (0, 2, 1, 2, 0)


def test_the_stats_read_what_is_owed_when_asked() -> None:
    centre = smsc(dlr_delay=DelayDistribution(5.0, 5.0))
    esme = Esme(centre)
    esme.submit(2)
    assert centre.stats.receipts_unsent == 2
    assert centre.stats.pending == 0
    esme.advance(5.0)
    assert centre.stats.receipts_unsent == 0
    assert counts(centre, "receipts_sent", "receipts_acked") == (2, 2)


def test_stats_of_their_own_owe_nothing_and_list_every_figure() -> None:
    stats = SmscStats()
    document = stats.to_json()
    assert document["receipts_unsent"] == document["pending"] == document["cancelled"] == 0
    assert "owed_by" not in document
    assert set(document) == {name for name in SmscStats.__slots__ if name != "owed_by"} | {"receipts_unsent",
                                                                                           "pending"}


_CONDITIONS = (Condition.REACHABLE, Condition.ROAMING, Condition.ABSENT, Condition.UNKNOWN, Condition.BARRED)
_STEPS = st.lists(st.one_of(
    # One subscriber of each condition; a validity of 4 s outlives an absent subscriber's first retry (3 s) but
    # not its second.
    st.tuples(st.just("submit"), st.integers(0, 4), st.sampled_from(["", IN_10_S]),
              st.sampled_from(["", "000000000004000R"])),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("originate"), st.integers(0, 4)),
    st.tuples(st.just("advance"), st.floats(0.0, 8.0)),
), max_size=30)


@settings(max_examples=200, deadline=None)
@given(steps=_STEPS, absent_retry=st.sampled_from([0.0, 3.0]))
# Every outcome once: delivered (reachable, roaming), undeliverable (unknown, barred), expired (absent, past its
# validity), cancelled (scheduled), pending (scheduled, and the roaming one for a moment), originated.
@example(steps=[("submit", 0, "", ""), ("submit", 1, "", ""), ("submit", 2, "", "000000000004000R"),
                ("submit", 3, "", ""), ("submit", 4, "", ""), ("submit", 0, IN_10_S, ""), ("cancel", 5),
                ("submit", 0, IN_10_S, ""), ("originate", 1), ("advance", 3.5), ("advance", 8.0)],
         absent_retry=3.0)
def test_every_message_is_accounted_for_at_any_time(steps: list[tuple[object, ...]], absent_retry: float) -> None:
    # docs/smsc.md: submitted + originated = delivered + undeliverable + expired + cancelled + pending (no
    # replace_if_present_flag here) -- what a stopped SMSC's report adds up to.
    registry = SubscriberRegistry()
    registry.update((f"44770090000{n}", condition) for n, condition in enumerate(_CONDITIONS))
    centre = smsc(registry, absent_retry=absent_retry, peer_window=100)
    esme = Esme(centre)
    for step in steps:
        if step[0] == "submit":
            _, n, schedule, validity = step
            esme.write(Pdu.make(C.submit_sm, 0, source_addr=SOURCE, destination_addr=f"44770090000{n}",
                                registered_delivery=1, short_message=b"x", schedule_delivery_time=schedule,
                                validity_period=validity))
        elif step[0] == "cancel":
            ids = [str(p["message_id"]) for p in esme.seen if p.command_id is C.submit_sm_resp and p["message_id"]]
            if ids:
                esme.write(Pdu.make(C.cancel_sm, 0, message_id=ids[int(step[1]) % len(ids)], source_addr=SOURCE))  # type: ignore[call-overload]
        elif step[0] == "originate":
            centre.originate_mt("CarrierSim", f"44770090000{step[1]}", b"otp", esme.now)
            esme.feed(b"")
        else:
            esme.advance(float(step[1]))  # type: ignore[arg-type]
        s = centre.stats.to_json()
        assert s["submitted"] + s["originated"] == (s["delivered"] + s["undeliverable"] + s["expired"]
                                                    + s["cancelled"] + s["pending"]), s


def test_a_receipt_delay_delays_the_receipt_only_the_message_is_final_at_once() -> None:
    # docs/smsc.md (--dlr-delay): during the delay the message is already DELIVERED, so cancel_sm and replace_sm
    # find nothing pending; only the receipt waits, and its done date is the delivery's (22:13), not the
    # receipt's (22:14).
    centre = smsc(dlr_delay=DelayDistribution(60.0, 60.0))
    esme = Esme(centre)
    esme.submit()
    [mid] = [str(p["message_id"]) for p in esme.seen if p.command_id is C.submit_sm_resp]
    esme.advance(1.0)
    esme.write(Pdu.make(C.query_sm, 0, message_id=mid, source_addr=SOURCE))
    assert esme.seen[-1]["message_state"] == 2  # DELIVERED
    esme.write(Pdu.make(C.cancel_sm, 0, message_id=mid, source_addr=SOURCE))
    assert esme.seen[-1].command_status == S.ESME_RCANCELFAIL
    esme.write(Pdu.make(C.replace_sm, 0, message_id=mid, source_addr=SOURCE, short_message=b"y"))
    assert esme.seen[-1].command_status == S.ESME_RREPLACEFAIL
    assert counts(centre, "delivered", "pending", "receipts_unsent") == (1, 0, 1)
    esme.advance(59.0)
    [receipt] = esme.receipts()
    assert b"done date:2311142213 stat:DELIVRD" in bytes(receipt["short_message"])  # type: ignore[arg-type]
    assert counts(centre, "receipts_sent", "receipts_unsent") == (1, 0)


# --------------------------------------------------------------------------- what receipts_sent counts


def test_receipts_sent_counts_receipts_as_they_go_not_as_they_are_queued() -> None:
    # A pipelining ESME behind the SMSC's window of 2 that does not answer at first: 12 receipts made, 2 written.
    # Before, receipts_sent said 12.
    centre = smsc(window=2, peer_window=12)
    esme = Esme(centre, answers=False)
    for _ in range(3):
        esme.submit(4)
    assert len(esme.receipts()) == 2
    assert centre.stats.receipts_sent == 2
    assert centre.stats.receipts_unsent == 10
    # Answered now: the window moves, and each receipt counts once, as it goes.
    esme.answers = True
    esme.feed(b"".join(encode(Pdu.make(C.deliver_sm_resp, p.sequence_number)) for p in esme.receipts()))
    assert len(esme.receipts()) == 12
    assert (centre.stats.receipts_sent, centre.stats.receipts_acked) == (12, 12)
    assert centre.stats.receipts_unsent == 0


def test_a_receipt_held_then_queued_behind_the_window_counts_when_it_goes() -> None:
    # Held for the system_id (no receiver yet), then taken by a bind whose window (1) lets one go at a time, the
    # ESME answering none: one is sent, two wait. Before, receipts_sent counted all three as the bind took them.
    centre = smsc(window=1)
    Esme(centre, C.bind_transmitter).submit(3)
    rx = Esme(centre, C.bind_receiver, answers=False)
    assert len(rx.receipts()) == 1
    assert centre.stats.receipts_sent == 1


def test_a_receipt_the_codec_refuses_for_the_bind_is_unsendable_not_sent() -> None:
    # A data_sm brought a 30-digit source, which only a data_sm receipt can carry; an SMPP 3.3 receiver has no
    # data_sm, so that receipt cannot be written for it.
    centre = smsc()
    tx = Esme(centre, C.bind_transmitter)
    tx.write(Pdu.make(C.data_sm, 0, source_addr="1" * 30, destination_addr="447700900001", registered_delivery=1,
                      tlvs={"message_payload": b"x"}))
    assert centre.owed() == Owed(receipts_held=1)
    rx = centre.connect("esme:2", T0)
    rx.receive_data(encode(Pdu.make(C.bind_receiver, 1, system_id="esme", password="pw", interface_version=0x33)),
                    T0)
    # Before, counted sent as the bind took it from the held ones.
    assert (centre.stats.receipts_sent, centre.stats.unsendable) == (0, 1)
    assert centre.stats.receipts_unsent == 0


# --------------------------------------------------------------------------------------- at a real stop


async def _read_pdu(reader: asyncio.StreamReader) -> Pdu:
    header = await reader.readexactly(HEADER_SIZE)
    length = HEADER.unpack(header)[0]
    return decode(header + await reader.readexactly(length - HEADER_SIZE))


async def test_the_report_of_a_stopped_smsc_says_which_receipts_it_never_sent() -> None:
    # What `carrier-sim smsc` does on SIGTERM (SmscServer.shutdown, then the --json report), over a real socket.
    server = SmscServer(Smsc(SmscConfig(accounts=(Account("esme", "pw"),), dlr_delay=DelayDistribution(5.0, 5.0),
                                        peer_window=20)))
    host, port = await server.listen("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(encode(Pdu.make(C.bind_transceiver, 1, system_id="esme", password="pw", interface_version=0x34)))
    assert (await _read_pdu(reader)).command_id is C.bind_transceiver_resp
    writer.write(b"".join(encode(Pdu.make(C.submit_sm, 2 + n, source_addr=SOURCE, destination_addr=f"4477009{n:05d}",
                                          registered_delivery=1, short_message=b"x")) for n in range(20)))
    for _ in range(20):
        assert (await _read_pdu(reader)).command_status == S.ESME_ROK

    async def answer_the_unbind() -> None:
        unbind = await _read_pdu(reader)
        assert unbind.command_id is C.unbind
        writer.write(encode(unbind.response()))

    answering = asyncio.create_task(answer_the_unbind())
    await server.shutdown(grace=2.0)
    await answering
    writer.close()
    stats = smsc_report(server.smsc, started_at=T0, duration=1.0)["stats"]
    assert isinstance(stats, dict)
    assert {k: stats[k] for k in ("submitted", "delivered", "receipts_sent", "receipts_unsent", "pending")} == {
        "submitted": 20, "delivered": 20, "receipts_sent": 0, "receipts_unsent": 20, "pending": 0}
