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
