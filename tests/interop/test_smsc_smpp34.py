"""Interop: smpp34 (PyPI ``smpp34``, a Rust/tokio SMPP core with asyncio bindings) as an ESME against our SMSC.

The SMSC runs in-process on 127.0.0.1 (port 0) in the test's event loop; smpp34's ``Client`` binds to it, its
``Smsc`` handle submits and yields received deliver_sm as ``DeliverSmEvent`` (answered by smpp34's core), and
``unbind()`` ends the session. What the SMSC stored is read from its ``mt_listener``; its oracle's verdicts for
the smpp34 session are checked at the end.

smpp34 behaviours the tests accommodate (found while writing them): ``Client.stop()`` neither unbinds nor closes
the socket, so the tests unbind through the session handle; a refused bind is reported as ``SmppError("bind timed
out")`` once ``connect_timeout_ms`` passes, whatever the bind_resp's command_status said.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.smpp.coding import DataCoding, decode_text, encode_text
from carrier_sim.smpp.segmentation import SegmentationMode, split_text
from carrier_sim.smpp.udh import split_udh
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig
from carrier_sim.smsc.store import StoredMessage
from tests.interop.conftest import require_module

smpp34: Any = require_module("smpp34")

pytestmark = pytest.mark.interop

WAIT = 5.0
SYSTEM_ID = "rust34"
PASSWORD = "secret"
SOURCE = "12345"


@dataclass
class Rig:
    """Our SMSC and a bound smpp34 session."""

    smsc: Smsc
    server: SmscServer
    host: str
    port: int
    session: Any = None
    stored: list[StoredMessage] = field(default_factory=list)


async def bounded(awaitable: Any) -> Any:
    """Await anything smpp34 returns, for at most WAIT seconds."""
    async with asyncio.timeout(WAIT):
        return await awaitable


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait (bounded) until ``predicate()`` holds."""
    try:
        async with asyncio.timeout(WAIT):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {WAIT} s waiting for {what}") from None


def tlvs_of(event: Any) -> dict[int, Any]:
    """A DeliverSmEvent's TLVs by tag."""
    return {t.tag: t for t in event.tlvs}


def receipt_fields(text: bytes) -> dict[str, str]:
    """key -> value of a receipt's text (values up to the next blank; text: last)."""
    head, _, excerpt = text.decode("ascii").partition(" text:")
    out = {}
    for token in head.replace("submit date", "submit_date").replace("done date", "done_date").split():
        key, _, value = token.partition(":")
        out[key] = value
    out["text"] = excerpt
    return out


def verdicts(smsc: Smsc) -> dict[str, str]:
    """The oracle's verdicts for the one smpp34 session."""
    [session] = [s for s in smsc.verdicts() if s["system_id"] == SYSTEM_ID]
    checks = session["checks"]
    assert isinstance(checks, list)
    return {str(c["check"]): str(c["verdict"]) for c in checks}


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """Our SMSC and an smpp34 transceiver bound to it; unbinds (if the test did not) and stops everything."""
    stored: list[StoredMessage] = []
    smsc = Smsc(SmscConfig(accounts=(Account(SYSTEM_ID, PASSWORD),)),
                mt_listener=lambda message, _now: stored.append(message))
    server = SmscServer(smsc)
    host, port = await server.listen("127.0.0.1", 0)
    client = smpp34.Client(host, port, SYSTEM_ID, PASSWORD, bind_type="TRX", connect_timeout_ms=int(WAIT * 1000))
    try:
        session = await bounded(client.connect())
        yield Rig(smsc, server, host, port, session, stored)
        if smsc.connections:
            await bounded(session.unbind())
    finally:
        await bounded(client.stop())
        await bounded(server.shutdown(grace=1.0))


async def test_bind_is_a_transceiver_of_our_account(rig: Rig) -> None:
    assert rig.session.system_id == SYSTEM_ID
    [conn] = rig.smsc.connections.values()
    assert conn.system_id == SYSTEM_ID
    assert conn.receives
    assert rig.smsc.accounts.binds(SYSTEM_ID) == 1


async def test_gsm7_submit_gets_a_receipt_with_its_message_id(rig: Rig) -> None:
    text = "Your code is 123456"
    resp = await bounded(rig.session.submit_sm("447700900001", encode_text(text, 0), source_addr=SOURCE,
                                               registered_delivery=1))
    assert resp.is_success
    assert resp.command_status == 0
    [message] = rig.stored
    assert resp.message_id == str(message.message_id)
    assert decode_text(message.data, message.data_coding) == text

    receipt = await bounded(rig.session.next())
    assert type(receipt).__name__ == "DeliverSmEvent"
    assert receipt.esm_class == 0x04
    assert (receipt.source_addr, receipt.destination_addr) == ("447700900001", SOURCE)
    fields = receipt_fields(receipt.short_message)
    assert (fields["id"], fields["stat"], fields["err"], fields["text"]) == (resp.message_id, "DELIVRD", "000", text)
    tlvs = tlvs_of(receipt)
    assert tlvs[smpp34.TLV_RECEIPTED_MESSAGE_ID].as_string() == resp.message_id
    assert tlvs[smpp34.TLV_MESSAGE_STATE].as_int() == 2


async def test_multipart_ucs2_parts_by_udh_and_by_sar_each_get_a_receipt(rig: Rig) -> None:
    text = "Код подтверждения: 123456. Никому его не сообщайте! " * 2  # 106 UCS-2 characters: two parts
    ids: list[str] = []
    # The same text twice: concatenated by UDH (esm_class UDHI), then by the SAR TLVs smpp34 passes through.
    for segment in split_text(text, DataCoding.UCS2, SegmentationMode.UDH_CONCAT_8, reference=0x2A):
        resp = await bounded(rig.session.submit_sm("447700900002", segment.short_message, source_addr=SOURCE,
                                                   esm_class=0x40, data_coding=8, registered_delivery=1))
        assert resp.command_status == 0
        ids.append(resp.message_id)
    sar_parts = split_text(text, DataCoding.UCS2, SegmentationMode.SAR, reference=0x2B)
    for segment in sar_parts:
        assert segment.sar is not None
        tlvs = [smpp34.Tlv(smpp34.TLV_SAR_MSG_REF_NUM, segment.sar.msg_ref_num.to_bytes(2, "big")),
                smpp34.Tlv(smpp34.TLV_SAR_TOTAL_SEGMENTS, bytes([segment.sar.total_segments])),
                smpp34.Tlv(smpp34.TLV_SAR_SEGMENT_SEQNUM, bytes([segment.sar.segment_seqnum]))]
        resp = await bounded(rig.session.submit_sm("447700900002", segment.short_message, source_addr=SOURCE,
                                                   data_coding=8, registered_delivery=1, tlvs=tlvs))
        assert resp.command_status == 0
        ids.append(resp.message_id)
    assert len(ids) == 4
    assert len(set(ids)) == 4

    udh_parts, sar_stored = rig.stored[:2], rig.stored[2:]
    bodies = []
    for number, message in enumerate(udh_parts, start=1):
        udh, body = split_udh(message.data)
        concat = udh.concatenation
        assert concat is not None
        assert (concat.reference, concat.total, concat.sequence) == (0x2A, 2, number)
        bodies.append(body)
    assert b"".join(bodies).decode("utf-16-be") == text
    assert b"".join(m.data for m in sar_stored).decode("utf-16-be") == text
    assert all(m.data_coding == 8 for m in rig.stored)

    receipts = [await bounded(rig.session.next()) for _ in ids]
    assert sorted(tlvs_of(r)[smpp34.TLV_RECEIPTED_MESSAGE_ID].as_string() for r in receipts) == sorted(ids)
    assert {receipt_fields(r.short_message)["stat"] for r in receipts} == {"DELIVRD"}
    found = verdicts(rig.smsc)
    assert (found["udhi"], found["concatenation"], found["data_coding"]) == ("pass", "pass", "pass")


async def test_mo_reaches_smpp34(rig: Rig) -> None:
    assert rig.smsc.inject_mo("447700900003", SOURCE, "Hi there", rig.server.clock())
    rig.server.service()
    mo = await bounded(rig.session.next())
    assert (mo.source_addr, mo.destination_addr, mo.short_message, mo.esm_class, mo.data_coding) == (
        "447700900003", SOURCE, b"Hi there", 0, 0)
    assert (mo.source_addr_ton, mo.source_addr_npi) == (1, 1)
    assert rig.smsc.inject_mo("447700900004", SOURCE, "Привет", rig.server.clock())
    rig.server.service()
    mo = await bounded(rig.session.next())
    assert (mo.data_coding, mo.short_message.decode("utf-16-be")) == (8, "Привет")
    await until(lambda: rig.smsc.stats.mo_sent == 2, "both MO sent")


async def test_unbind_ends_the_session_cleanly(rig: Rig) -> None:
    resp = await bounded(rig.session.submit_sm("447700900001", b"bye", source_addr=SOURCE, registered_delivery=1))
    assert resp.is_success
    receipt = await bounded(rig.session.next())
    assert receipt.esm_class == 0x04
    await until(lambda: rig.smsc.stats.receipts_acked == 1, "smpp34's deliver_sm_resp")
    await bounded(rig.session.unbind())
    end = await bounded(rig.session.next())
    assert type(end).__name__ == "Disconnected"
    await until(lambda: not rig.smsc.connections, "the SMSC to forget the connection")
    assert rig.smsc.accounts.binds(SYSTEM_ID) == 0
    found = verdicts(rig.smsc)
    assert found["unbind"] == "pass"
    assert "fail" not in found.values(), found


async def test_an_smsc_unbind_is_answered_by_a_bare_close_which_the_oracle_fails() -> None:
    """smpp34 (found while testing an external identity core) closes the connection when the SMSC unbinds,
    without the unbind_resp SMPP 3.4 section 4.2 requires. The SMSC must see that and say so, not call it clean."""
    smsc = Smsc(SmscConfig(accounts=(Account(SYSTEM_ID, PASSWORD),)))
    server = SmscServer(smsc)
    wire: list[tuple[str, bytes]] = []
    server.tap = lambda _cid, kind, data, _now: wire.append((kind, data))
    host, port = await server.listen("127.0.0.1", 0)
    client = smpp34.Client(host, port, SYSTEM_ID, PASSWORD, bind_type="TRX", connect_timeout_ms=int(WAIT * 1000))
    try:
        await bounded(client.connect())
        await until(lambda: bool(smsc.connections), "the bind")
        await bounded(server.shutdown(grace=WAIT))
    finally:
        await bounded(client.stop())
    received = [data[4:8] for kind, data in wire if kind == "in"]
    sent = [data[4:8] for kind, data in wire if kind == "out"]
    assert bytes.fromhex("00000006") in sent  # our unbind
    assert bytes.fromhex("80000006") not in received  # no unbind_resp came back
    assert verdicts(smsc)["unbind"] == "fail"


async def test_refused_bind_leaves_nothing_bound() -> None:
    smsc = Smsc(SmscConfig(accounts=(Account(SYSTEM_ID, PASSWORD),)))
    server = SmscServer(smsc)
    host, port = await server.listen("127.0.0.1", 0)
    client = smpp34.Client(host, port, SYSTEM_ID, "wrong", bind_type="TRX", connect_timeout_ms=500)
    try:
        with pytest.raises(smpp34.SmppError):
            await bounded(client.connect())
        await until(lambda: smsc.stats.bind_failures == 1, "the SMSC to refuse the bind")
        assert smsc.stats.binds == 0
        assert smsc.accounts.binds(SYSTEM_ID) == 0
    finally:
        await bounded(client.stop())
        await bounded(server.shutdown(grace=0.5))
