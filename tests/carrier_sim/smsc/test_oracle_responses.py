"""How the SMSC judges the ESME's answers to its own requests (deliver_sm, enquire_link), from raw octets.

Each test speaks to a :class:`~carrier_sim.smsc.centre.SmscConnection` in bytes, as a peer on a socket would, so
that it can send what a well-behaved ESME-role session never would: a response of the wrong command, a
generic_nack to a well-formed PDU.
"""

from __future__ import annotations

from dataclasses import dataclass

from carrier_sim.smpp.codec import encode
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.framing import decode_stream
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig, SmscConnection

C = CommandId
S = CommandStatus
T0 = 1_700_000_000.0


@dataclass
class Peer:
    """A raw ESME on one SMSC connection, in virtual time."""

    smsc: Smsc
    conn: SmscConnection
    now: float = T0

    def send(self, pdu: Pdu, after: float = 0.0) -> list[Pdu]:
        """Write ``pdu`` (its sequence_number as given) ``after`` seconds from now; what the SMSC wrote back."""
        self.now += after
        self.conn.receive_data(encode(pdu), self.now)
        return self.run(0.0)

    def run(self, seconds: float) -> list[Pdu]:
        """Let ``seconds`` pass, firing the SMSC's timers as they fall due; what it wrote meanwhile."""
        until = self.now + seconds
        deadline = self.smsc.next_deadline
        while deadline is not None and deadline <= until:
            self.now = max(self.now, deadline)
            self.smsc.handle_timers(self.now)
            deadline = self.smsc.next_deadline
        self.now = until
        frames = list(decode_stream(self.conn.data_to_send()))
        pdus = [frame for frame in frames if isinstance(frame, Pdu)]
        assert len(pdus) == len(frames)
        return pdus

    def receipt(self) -> Pdu:
        """Submit asking for a receipt and return the deliver_sm that carries it (unanswered)."""
        sent = self.send(Pdu.make(C.submit_sm, 2, source_addr="12345", destination_addr="447700900001",
                                  short_message=b"hi", registered_delivery=1))
        sent = [p for p in sent + self.run(1.0) if p.command_id is C.deliver_sm]
        assert len(sent) == 1
        return sent[0]

    def check(self, name: str) -> dict[str, object]:
        return next(c for c in self.conn.verdicts() if c["check"] == name)


def peer(**config: object) -> Peer:
    smsc = Smsc(SmscConfig(accounts=(Account("esme", "pw"),), **config))  # type: ignore[arg-type]
    conn = smsc.connect("test:1", T0)
    result = Peer(smsc, conn)
    [bound] = result.send(Pdu.make(C.bind_transceiver, 1, system_id="esme", password="pw", interface_version=0x34))
    assert bound.command_status == S.ESME_ROK
    return result


def test_a_response_of_another_command_to_our_deliver_sm_fails_response_echo_not_state() -> None:
    # An ESME never sends submit_sm_resp, so the state table refuses it; but this one carries our deliver_sm's
    # sequence_number: it answers that deliver_sm with the wrong command. Before: "submit_sm_resp is illegal in
    # the session state", and response_echo never exercised.
    esme = peer()
    deliver = esme.receipt()
    assert esme.send(Pdu.make(C.submit_sm_resp, deliver.sequence_number, message_id="")) == []  # never answered
    echo, state = esme.check("response_echo"), esme.check("state")
    assert (echo["verdict"], state["verdict"], state["violations"]) == ("fail", "pass", 0)
    assert echo["reason"] == ("1 violation(s) in 1; first: submit_sm_resp seq 1: our request with this "
                              "sequence_number is a deliver_sm, answered by a deliver_sm_resp, not a submit_sm_resp")
    # The deliver_sm still waits for its own answer.
    assert esme.conn.session.outstanding_requests == (deliver,)


def test_response_echo_reasons_name_commands_and_no_status_nobody_sent() -> None:
    # Before: "data_sm_resp: ESME_RSYSERR: sequence_number 1 is our deliver_sm, not a 259 in data_sm_resp
    # (sequence_number 1)" -- no ESME_RSYSERR was involved (a stray response is never answered), and 259 is
    # data_sm's command_id.
    esme = peer()
    deliver = esme.receipt()
    esme.send(Pdu.make(C.data_sm_resp, deliver.sequence_number, message_id=""))
    assert esme.check("response_echo")["reason"] == (
        "1 violation(s) in 1; first: data_sm_resp seq 1: our request with this sequence_number is a deliver_sm, "
        "answered by a deliver_sm_resp, not a data_sm_resp")
    esme = peer()
    deliver = esme.receipt()
    esme.send(Pdu.make(C.deliver_sm_resp, deliver.sequence_number + 7, message_id=""))
    assert esme.check("response_echo")["reason"] == (
        "1 violation(s) in 1; first: deliver_sm_resp seq 8: no request of ours with this sequence_number awaits a "
        "response")


def nack(seq: int, status: int) -> Pdu:
    return Pdu.make(C.generic_nack, seq, status)


def test_a_generic_nack_to_our_deliver_sm_fails_response_echo_naming_its_status_and_acknowledges_nothing() -> None:
    # Before: response_echo passed, and the receipt counted as acknowledged whatever the nack said.
    esme = peer()
    deliver = esme.receipt()
    esme.send(nack(deliver.sequence_number, S.ESME_RINVCMDID))
    echo = esme.check("response_echo")
    assert echo["verdict"] == "fail"
    assert "generic_nack ESME_RINVCMDID answered our deliver_sm seq 1, which was well-formed" in str(echo["reason"])
    assert esme.check("wellformed")["verdict"] == "pass"  # a nack with an error status is a well-formed PDU
    # ESME_RINVCMDID is no "try later" (SMPP 3.4 5.1.3, carrier_sim.smsc.retry): a final refusal, as from a
    # deliver_sm_resp with that status.
    stats = esme.smsc.stats
    assert (stats.receipts_acked, stats.receipts_refused, stats.receipts_retried) == (0, 1, 0)
    assert [p for p in esme.run(120.0) if p.command_id is C.deliver_sm] == []  # never sent again


def test_a_generic_nack_with_status_0_is_malformed_and_never_acknowledges_a_receipt() -> None:
    # SMPP 3.4 4.3: a generic_nack carries the error it reports. Before, status 0 counted as receipts_acked.
    esme = peer()
    deliver = esme.receipt()
    esme.send(nack(deliver.sequence_number, S.ESME_ROK))
    assert (esme.check("response_echo")["verdict"], esme.check("wellformed")["verdict"]) == ("fail", "fail")
    assert "generic_nack seq 1 has command_status 0" in str(esme.check("wellformed")["reason"])
    # It says nothing, so it is taken as no answer: "try later", retried after the first back-off (1 s).
    stats = esme.smsc.stats
    assert (stats.receipts_acked, stats.receipts_refused, stats.receipts_retried) == (0, 0, 1)
    [again] = esme.run(1.5)
    assert again.command_id is C.deliver_sm
    assert again["short_message"] == deliver["short_message"]
    esme.send(again.response(message_id=""))
    assert stats.receipts_acked == 1


def test_a_generic_nack_with_a_try_later_status_has_the_receipt_sent_again() -> None:
    esme = peer()
    deliver = esme.receipt()
    esme.send(nack(deliver.sequence_number, S.ESME_RSYSERR))
    assert esme.smsc.stats.receipts_retried == 1
    assert [p.command_id for p in esme.run(1.5)] == [C.deliver_sm]


def test_an_mo_answered_by_a_generic_nack_with_status_0_is_not_delivered() -> None:
    esme = peer()
    assert esme.smsc.inject_mo("447700900003", "12345", "STOP", esme.now)
    [mo] = esme.run(0.0)
    assert mo.command_id is C.deliver_sm
    esme.send(nack(mo.sequence_number, S.ESME_ROK))
    assert esme.smsc.stats.mo_retried == 1
    [again] = esme.run(1.5)
    assert again.command_id is C.deliver_sm


def test_an_enquire_link_answered_by_generic_nack_fails_enquire_link_but_the_link_is_alive() -> None:
    # An ESME that does not implement enquire_link (generic_nack ESME_RINVCMDID): before, enquire_link passed.
    esme = peer(enquire_link_interval=1.0, response_timeout=2.0)
    for _ in range(5):
        for pdu in esme.run(1.01):
            if pdu.command_id is C.enquire_link:
                esme.send(nack(pdu.sequence_number, S.ESME_RINVCMDID))
    link = esme.check("enquire_link")
    assert (link["verdict"], link["violations"]) == ("fail", 5)
    assert "enquire_link seq 1 answered by a generic_nack ESME_RINVCMDID, not an enquire_link_resp" in str(
        link["reason"])
    assert esme.check("response_echo")["verdict"] == "fail"
    # It answers, so it is there: no dead link, no unbind.
    assert esme.smsc.stats.dead_links == 0
    assert esme.conn.session.state.is_bound


def test_a_late_generic_nack_fails_response_echo_too() -> None:
    esme = peer()
    deliver = esme.receipt()
    esme.run(31.0)  # the response timer fires: response_time fails, the receipt goes again
    assert esme.check("response_echo")["verdict"] == "inconc"
    esme.send(nack(deliver.sequence_number, S.ESME_RSYSERR))
    assert esme.check("response_echo")["verdict"] == "fail"


def test_an_enquire_link_resp_with_an_error_status_fails_enquire_link_but_the_link_is_alive() -> None:
    # SMPP 3.4 4.11.2: enquire_link_resp carries ESME_ROK. Before, one with ESME_RSYSERR passed the check.
    esme = peer(enquire_link_interval=1.0, response_timeout=2.0)
    for _ in range(3):
        for pdu in esme.run(1.01):
            if pdu.command_id is C.enquire_link:
                esme.send(Pdu.make(C.enquire_link_resp, pdu.sequence_number, S.ESME_RSYSERR))
    link = esme.check("enquire_link")
    assert (link["verdict"], link["violations"]) == ("fail", 3)
    assert "enquire_link seq 1 answered by an enquire_link_resp with ESME_RSYSERR" in str(link["reason"])
    # It is the right response, in time: only the enquire_link check holds it against the peer.
    assert esme.check("response_echo")["verdict"] == "pass"
    assert esme.check("response_time")["verdict"] == "pass"
    assert esme.smsc.stats.dead_links == 0
    assert esme.conn.session.state.is_bound


def test_an_enquire_link_resp_with_esme_rok_passes_enquire_link() -> None:
    esme = peer(enquire_link_interval=1.0, response_timeout=2.0)
    for _ in range(3):
        for pdu in esme.run(1.01):
            if pdu.command_id is C.enquire_link:
                esme.send(pdu.response())
    link = esme.check("enquire_link")
    assert (link["verdict"], link["exercised"]) == ("pass", 3)
