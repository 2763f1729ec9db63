"""The SMSC's per-message shortcuts against the straightforward code they replaced, on arbitrary input.

Each reference below is the implementation the shortcut replaced, kept here verbatim in spirit: the receipt's
excerpt, the message id, the receipt PDU (template, TLVs, deliver_sm/data_sm) and the remembered time fields
must come out the same -- and fail the same -- whatever the message.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from carrier_sim.smpp import gsm7
from carrier_sim.smpp.coding import decode_text
from carrier_sim.smpp.constants import CommandId
from carrier_sim.smpp.errors import SmppError
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.receipt import (
    PRESETS,
    IdBase,
    IdFormat,
    MessageState,
    Receipt,
    ReceiptDialect,
    format_receipt,
    receipt_tlv_values,
)
from carrier_sim.smpp.tlv import NetworkErrorCode
from carrier_sim.smpp.udh import split_udh
from carrier_sim.smsc import centre
from carrier_sim.smsc.accounts import Account, MoDelivery
from carrier_sim.smsc.centre import Smsc, SmscConfig
from carrier_sim.smsc.store import MessageStore, StoredMessage

T0 = 1_700_000_000.0


def _reference_excerpt(data: bytes, data_coding: int, esm_class: int) -> str:
    try:
        if esm_class & 0x40:
            data = split_udh(data)[1]
        text = decode_text(data, data_coding)
    except SmppError:
        return ""
    return "".join(ch if ch.isascii() and ch.isprintable() and gsm7.is_gsm7(ch) else "?" for ch in text)[:20]


def _reference_receipt_pdu(smsc: Smsc, message: StoredMessage, now: float, esm_class: int = 0x04) -> Pdu:
    dialect = smsc.config.dialect
    receipt = Receipt(
        message_id=dialect.submit_id.render(message.message_id),
        submitted=1,
        delivered=1 if message.state is MessageState.DELIVERED else 0,
        submit_date=datetime.fromtimestamp(message.submitted_at, UTC).replace(tzinfo=None),
        done_date=datetime.fromtimestamp(message.final_at or now, UTC).replace(tzinfo=None),
        stat=message.state,
        err=f"{message.error.error_code if message.error else 0:0{dialect.err_width}d}",
        text=_reference_excerpt(message.data, message.data_coding, message.esm_class),
    )
    text = gsm7.encode(format_receipt(receipt, dialect))
    tlvs = receipt_tlv_values(receipt, message.error)
    tlvs["receipted_message_id"] = dialect.submit_id.render(message.message_id)
    account = smsc.accounts.get(message.system_id)
    common = {
        "source_addr_ton": message.dest_ton,
        "source_addr_npi": message.dest_npi,
        "source_addr": message.destination_addr,
        "dest_addr_ton": message.source_ton,
        "dest_addr_npi": message.source_npi,
        "destination_addr": message.source_addr,
        "esm_class": esm_class,
    }
    if account is not None and account.mo_delivery is MoDelivery.DATA_SM:
        return Pdu.make(CommandId.data_sm, 0, tlvs={"message_payload": text, **tlvs}, **common)  # type: ignore[arg-type]
    return Pdu.make(CommandId.deliver_sm, 0, short_message=text[:254], tlvs=tlvs, **common)  # type: ignore[arg-type]


gsm_text = st.text(alphabet=st.sampled_from("".join(sorted(gsm7._ENCODE))), max_size=60)
payloads = (
    gsm_text.map(gsm7.encode)
    | st.binary(max_size=60)
    | st.tuples(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=15, max_size=60),
                st.binary(max_size=3)).map(lambda p: p[0].encode("ascii") + p[1])
    | st.text(max_size=30).map(lambda t: t.encode("utf-16-be", "surrogatepass"))
    | st.tuples(st.binary(max_size=8), gsm_text).map(lambda p: bytes([len(p[0])]) + p[0] + gsm7.encode(p[1]))
)
codings = st.sampled_from([0, 1, 3, 4, 8, 0xF0, 0xF4, 0xC0, 0xE0, 0x02, 0x0F]) | st.integers(min_value=0, max_value=255)


@given(payloads, codings, st.sampled_from([0, 0x40, 0x43]))
@example(gsm7.encode("Your code is 482913, do not share"), 0, 0)
@example(gsm7.encode("{curly} €uro"), 0, 0)
@example(b"\x05\x00\x03\x01\x02\x01hello", 0, 0x40)
@example(b"\x80", 0, 0)
@example(gsm7.encode("Your verification code is 482913. Do not share") + b"\x80", 0, 0)  # bad past the cut
@example(gsm7.encode("Your verification code is 482913. Do not share") + b"\x1b", 0, 0)  # lone escape at the end
@example(gsm7.encode("Your verification code is 482913. Do not ") + gsm7.encode("{share}"), 0, 0)
def test_excerpt_matches_the_reference(data: bytes, data_coding: int, esm_class: int) -> None:
    assert centre._excerpt(data, data_coding, esm_class) == _reference_excerpt(data, data_coding, esm_class)


id_formats = st.builds(IdFormat, st.sampled_from(IdBase), st.booleans(), st.integers(min_value=0, max_value=12))
dialects = st.sampled_from(PRESETS) | st.builds(
    ReceiptDialect, name=st.just("drawn"), submit_id=id_formats, receipt_id=id_formats, counts=st.booleans(),
    include_text=st.booleans(), text_length=st.integers(min_value=0, max_value=25),
)


@given(dialects, st.integers(min_value=0, max_value=2**70))
def test_message_id_is_what_the_dialect_renders(dialect: ReceiptDialect, number: int) -> None:
    smsc = Smsc(SmscConfig(dialect=dialect))
    assert smsc._message_id(number) == dialect.submit_id.render(number)


@st.composite
def messages(draw: st.DrawFn) -> StoredMessage:
    submitted_at = draw(st.floats(min_value=T0, max_value=T0 + 86_400 * 400))
    message = StoredMessage(
        message_id=draw(st.integers(min_value=1, max_value=2**64)),
        system_id=draw(st.sampled_from(["esme", "dataesme", "nobody"])),
        service_type="",
        source_addr=draw(st.sampled_from(["VerifySvc", "12345", ""])),
        destination_addr=draw(st.sampled_from(["447700900123", "491700000000"])),
        data=draw(payloads),
        data_coding=draw(codings),
        esm_class=draw(st.sampled_from([0, 0x40])),
        registered_delivery=1,
        submitted_at=submitted_at,
        deliver_at=submitted_at,
        expire_at=submitted_at + 3600,
        source_ton=draw(st.integers(min_value=0, max_value=6)),
        source_npi=draw(st.integers(min_value=0, max_value=18)),
        dest_ton=draw(st.integers(min_value=0, max_value=6)),
        dest_npi=draw(st.integers(min_value=0, max_value=18)),
    )
    message.state = draw(st.sampled_from(MessageState))
    message.final_at = draw(st.none() | st.just(0.0) | st.floats(min_value=submitted_at, max_value=submitted_at + 900))
    message.error = draw(st.none() | st.builds(NetworkErrorCode, st.integers(1, 3), st.integers(0, 0xFFFF)))
    return message


@settings(max_examples=300)
@given(dialects, messages(), st.floats(min_value=T0, max_value=T0 + 86_400 * 500), st.sampled_from([0x04, 0x20]))
def test_receipt_pdu_matches_the_reference(dialect: ReceiptDialect, message: StoredMessage, now: float,
                                           esm_class: int) -> None:
    accounts = (Account("esme", "pw"), Account("dataesme", "pw", mo_delivery=MoDelivery.DATA_SM))
    smsc = Smsc(SmscConfig(dialect=dialect, accounts=accounts))
    try:
        expected: Pdu | str = _reference_receipt_pdu(smsc, message, now, esm_class)
    except SmppError as err:
        expected = repr(err)
    for _ in range(2):  # again, from the SMSC's caches
        try:
            got: Pdu | str = smsc.receipt_pdu(message, now, esm_class)
        except SmppError as err:
            got = repr(err)
        assert got == expected


@pytest.mark.parametrize("schedule", ["", "000000000010000R", "231115000000000+", "bad", "991231235959900-"])
@pytest.mark.parametrize("validity", ["", "000000001000000R", "231114000000000+", "000000000005000R", "x" * 16])
def test_times_are_the_same_remembered_or_not(schedule: str, validity: str) -> None:
    smsc = Smsc(SmscConfig())
    pdu = Pdu.make(CommandId.submit_sm, 1, schedule_delivery_time=schedule, validity_period=validity)

    def outcome(now: float) -> object:
        try:
            return smsc._times(pdu, now)
        except SmppError as err:
            return (type(err), err.command_status)

    for now in (T0, T0, T0 + 0.5, T0 + 0.5, T0):
        fresh = Smsc(SmscConfig())
        try:
            expected: object = fresh._resolve_times(schedule, validity, now)
        except SmppError as err:
            expected = (type(err), err.command_status)
        assert outcome(now) == expected


# ------------------------------------------------------------------------------------------------ store schedule


def _due_reference(store: MessageStore, now: float) -> list[int]:
    """MessageStore.due as it was: next_deadline (which drops stale entries) then pop, until not due."""
    out = []
    while (at := store.next_deadline) is not None and at <= now:
        _, mid = heapq.heappop(store._schedule)
        out.append(mid)
    return out


_STORE_OPS = st.lists(
    st.tuples(st.sampled_from(["submit", "replace", "retry", "finish", "cancel", "due"]),
              st.integers(0, 5), st.integers(0, 20)),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_STORE_OPS)
def test_store_due_matches_the_next_deadline_loop(ops: list[tuple[str, int, int]]) -> None:
    stores = (MessageStore(), MessageStore())
    for op, who, t in ops:
        seen = []
        for k, store in enumerate(stores):
            message = StoredMessage(0, "sys", "", f"src{who % 2}", f"dst{who}", b"x", 0, 0, 1, 0.0, float(t), 100.0)
            pending = [m for m in store._messages.values() if m.pending]
            target = pending[who % len(pending)] if pending else None
            if op == "submit":
                store.submit(message, replace_if_present=bool(t % 2))
            elif op == "replace" and target is not None:
                store.replace(target.message_id, "", b"y", float(t), None, 1, system_id="sys", now=float(t))
            elif op == "retry" and target is not None:
                store.retry(target, float(t))
            elif op == "finish" and target is not None:
                store.finish(target, MessageState.DELIVERED, float(t))
            elif op == "cancel" and target is not None:
                store.cancel(float(t), target.message_id, "", system_id="sys")
            elif op == "due":
                seen.append([m.message_id for m in store.due(float(t))] if k == 0 else _due_reference(store, float(t)))
        if seen:
            assert seen[0] == seen[1]
    assert [m.message_id for m in stores[0].due(1e9)] == _due_reference(stores[1], 1e9)
