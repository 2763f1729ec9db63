"""Interop: aiosmpplib (PyPI ``aiosmpplib``), a third-party asyncio ESME, against our SMSC over a real socket.

The SMSC runs in-process (:class:`~carrier_sim.net.smsc_server.SmscServer` on 127.0.0.1, port 0) in the same event
loop as aiosmpplib's ``ESME``. aiosmpplib reports everything it receives through its hook (the parsed message and
the raw PDU); the raw PDUs are decoded with our codec too, so each assertion can look at both aiosmpplib's reading
and the octets. What the SMSC stored is read from its ``mt_listener``.

aiosmpplib specifics used here: messages are queued with ``esme.broker.enqueue``; a long message is split into
UDH-concatenated parts only with ``esm_class=0x40`` and ``auto_message_payload=False`` (otherwise it goes whole in
message_payload); aiosmpplib correlates a receipt to the queued ``SubmitSm`` by the receipt text's ``id:`` and
hands it to the hook with that message's ``log_id`` -- for a split message, once, after the last part's receipt.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.smpp.codec import decode
from carrier_sim.smpp.coding import decode_text
from carrier_sim.smpp.constants import CommandId
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.udh import split_udh
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig
from carrier_sim.smsc.store import StoredMessage
from tests.interop.conftest import require_module

aio: Any = require_module("aiosmpplib")

pytestmark = pytest.mark.interop

C = CommandId
WAIT = 5.0
SYSTEM_ID = "aiosmpp"
PASSWORD = "secret"
SOURCE = "12345"


class Recorder(aio.AbstractHook):  # type: ignore[misc]
    """aiosmpplib hook keeping what was received: (aiosmpplib's parsed message or None, our decoding)."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, Pdu]] = []
        self.send_errors: list[tuple[Any, Exception]] = []

    async def sending(self, smpp_message: Any, pdu: bytes, client_id: str) -> None:
        """Nothing to do before a send."""

    async def received(self, smpp_message: Any, pdu: bytes, client_id: str) -> None:
        """Keep the parsed message and our own decoding of the same octets."""
        self.log.append((smpp_message, decode(pdu)))

    async def send_error(self, smpp_message: Any, error: Exception, client_id: str) -> None:
        """Keep errors: a test fails if aiosmpplib could not send something."""
        self.send_errors.append((smpp_message, error))

    def wire(self, command: CommandId) -> list[Pdu]:
        """Our decoding of every received PDU of this command."""
        return [pdu for _, pdu in self.log if pdu.command_id is command]

    def parsed(self, kind: str) -> list[Any]:
        """aiosmpplib's parsed messages of this class name (placeholders for segments are None, left out)."""
        return [m for m, _ in self.log if m is not None and type(m).__name__ == kind]


@dataclass
class Rig:
    """Our SMSC and an aiosmpplib ESME bound to it as a transceiver."""

    smsc: Smsc
    server: SmscServer
    esme: Any
    hook: Recorder
    stored: list[StoredMessage] = field(default_factory=list)


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait (bounded) until ``predicate()`` holds."""
    try:
        async with asyncio.timeout(WAIT):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {WAIT} s waiting for {what}") from None


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """Start the SMSC and aiosmpplib; stop aiosmpplib (it unbinds) and the SMSC afterwards."""
    stored: list[StoredMessage] = []
    smsc = Smsc(SmscConfig(accounts=(Account(SYSTEM_ID, PASSWORD),)),
                mt_listener=lambda message, _now: stored.append(message))
    server = SmscServer(smsc)
    host, port = await server.listen("127.0.0.1", 0)
    hook = Recorder()
    esme = aio.ESME(smsc_host=host, smsc_port=port, system_id=SYSTEM_ID, password=PASSWORD, hook=hook,
                    log_level="ERROR", socket_timeout=WAIT)
    runner = asyncio.create_task(esme.start())
    try:
        await until(lambda: smsc.stats.binds == 1, "aiosmpplib's bind")
        yield Rig(smsc, server, esme, hook, stored)
        async with asyncio.timeout(WAIT):
            await esme.stop()
        async with asyncio.timeout(WAIT):
            await runner
    finally:
        runner.cancel()
        async with asyncio.timeout(WAIT):
            await server.shutdown(grace=1.0)
    assert hook.send_errors == []


def verdicts(smsc: Smsc) -> dict[str, str]:
    """The oracle's verdicts for the one aiosmpplib session."""
    [session] = [s for s in smsc.verdicts() if s["system_id"] == SYSTEM_ID]
    checks = session["checks"]
    assert isinstance(checks, list)
    return {str(c["check"]): str(c["verdict"]) for c in checks}


def v_passes(found: dict[str, str], *checks: str) -> bool:
    """True when every named check passed."""
    return all(found[c] == "pass" for c in checks)


async def test_bind_is_accepted_with_our_interface_version(rig: Rig) -> None:
    [resp] = rig.hook.wire(C.bind_transceiver_resp)
    assert resp.command_status == 0
    assert resp["system_id"] == "smsc"
    assert resp.tlv("sc_interface_version") == 0x34
    assert rig.esme.session_state == aio.SmppSessionState.BOUND_TRX


async def test_gsm7_message_is_stored_and_its_receipt_correlated(rig: Rig) -> None:
    text = "Your code: 123456, valid 5 min. £"
    await rig.esme.broker.enqueue(aio.SubmitSm(short_message=text, source=aio.PhoneNumber(SOURCE),
                                               destination=aio.PhoneNumber("447700900001"), log_id="gsm-1"))
    await until(lambda: bool(rig.hook.parsed("DeliverSm")), "the receipt")

    [resp] = rig.hook.parsed("SubmitSmResp")
    assert resp.log_id == "gsm-1"
    assert resp.command_status == aio.SmppCommandStatus.ESME_ROK
    message_id = resp.message_id
    # What the SMSC took from aiosmpplib: GSM 7-bit (data_coding 0, one septet per octet), the exact text.
    [message] = rig.stored
    assert (message.source_addr, message.destination_addr, message.data_coding) == (SOURCE, "447700900001", 0)
    assert decode_text(message.data, 0) == text
    assert str(message.message_id) == message_id

    [receipt] = rig.hook.parsed("DeliverSm")
    assert receipt.is_receipt()
    assert receipt.log_id == "gsm-1"  # aiosmpplib matched the receipt's id: to our submit_sm_resp message_id
    parsed = receipt.parse_receipt()
    assert (parsed["id"], parsed["stat"], parsed["err"], parsed["sub"], parsed["dlvrd"]) == (
        message_id, "DELIVRD", 0, 1, 1)
    assert parsed["text"] == "Your code: 123456, v"  # the first 20 characters
    [wire] = rig.hook.wire(C.deliver_sm)
    assert wire.tlv("receipted_message_id") == message_id
    assert wire.tlv("message_state") == 2
    assert (wire["source_addr"], wire["destination_addr"]) == ("447700900001", SOURCE)


async def test_multipart_ucs2_message_arrives_whole_and_every_part_gets_a_receipt(rig: Rig) -> None:
    text = "Код подтверждения: 123456. Никому его не сообщайте! " * 3  # 159 UCS-2 characters
    await rig.esme.broker.enqueue(aio.SubmitSm(
        short_message=text, source=aio.PhoneNumber(SOURCE), destination=aio.PhoneNumber("447700900002"),
        esm_class=0x40, auto_message_payload=False, log_id="ucs-1",
    ))
    await until(lambda: bool(rig.hook.parsed("DeliverSm")), "the correlated receipt")

    # aiosmpplib cut 318 octets into parts of at most 134 (140 less a 6-octet UDH): three parts.
    responses = rig.hook.wire(C.submit_sm_resp)
    assert len(responses) == 3
    assert all(r.command_status == 0 for r in responses)
    ids = [str(r["message_id"]) for r in responses]
    assert len(set(ids)) == 3
    parts = sorted(rig.stored, key=lambda m: m.message_id)
    assert [str(m.message_id) for m in parts] == ids
    bodies = []
    references = set()
    for number, part in enumerate(parts, start=1):
        assert part.data_coding == 8
        assert part.esm_class & 0x40
        udh, body = split_udh(part.data)
        concat = udh.concatenation
        assert concat is not None
        assert (concat.total, concat.sequence) == (3, number)
        references.add(concat.reference)
        bodies.append(body)
    assert len(references) == 1
    assert b"".join(bodies).decode("utf-16-be") == text

    receipts = rig.hook.wire(C.deliver_sm)
    assert sorted(str(r.tlv("receipted_message_id")) for r in receipts) == sorted(ids)
    assert all(r.tlv("message_state") == 2 for r in receipts)
    # aiosmpplib reports the whole message once, after the last part's receipt, under the message's log_id.
    [final] = rig.hook.parsed("DeliverSm")
    assert final.log_id == "ucs-1"
    assert final.parse_receipt()["stat"] == "DELIVRD"
    [resp] = rig.hook.parsed("SubmitSmResp")
    assert resp.log_id == "ucs-1"
    assert v_passes(verdicts(rig.smsc), "udhi", "concatenation", "data_coding")


async def test_mo_reaches_aiosmpplib(rig: Rig) -> None:
    assert rig.smsc.inject_mo("447700900003", SOURCE, "Hi from a phone", rig.server.clock())
    assert rig.smsc.inject_mo("447700900004", SOURCE, "Привет", rig.server.clock())
    rig.server.service()
    await until(lambda: len(rig.hook.parsed("DeliverSm")) == 2, "two MO messages")
    latin, cyrillic = rig.hook.parsed("DeliverSm")
    assert not latin.is_receipt()
    assert (latin.source.number, latin.destination.number, latin.short_message) == (
        "447700900003", SOURCE, "Hi from a phone")
    assert (cyrillic.source.number, cyrillic.short_message, cyrillic.encoding) == ("447700900004", "Привет", "ucs2")
    assert rig.smsc.stats.mo_sent == 2


async def test_the_oracle_finds_no_fault_with_aiosmpplib(rig: Rig) -> None:
    await rig.esme.broker.enqueue(aio.SubmitSm(short_message="ping", source=aio.PhoneNumber(SOURCE),
                                               destination=aio.PhoneNumber("447700900001")))
    await until(lambda: bool(rig.hook.parsed("DeliverSm")), "the receipt")
    await until(lambda: rig.smsc.stats.receipts_acked == 1, "aiosmpplib's deliver_sm_resp")
    found = verdicts(rig.smsc)
    assert "fail" not in found.values(), found
    assert v_passes(found, "response_echo", "state", "wellformed", "window", "data_coding")


async def test_stop_unbinds_and_the_oracle_calls_it_clean(rig: Rig) -> None:
    async with asyncio.timeout(WAIT):
        await rig.esme.stop()
    await until(lambda: not rig.smsc.connections, "the SMSC to close the session")
    assert rig.smsc.accounts.binds(SYSTEM_ID) == 0
    assert verdicts(rig.smsc)["unbind"] == "pass"
