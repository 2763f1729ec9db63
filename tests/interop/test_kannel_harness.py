"""The Kannel harness proves itself against an independent SMSC before it is trusted to judge ours.

The SMSC here is smpp34's ``Server`` (a Rust-backed SMPP library, unrelated to this project), driven by a
stand-in of a few lines: it accepts any bind, answers each submit_sm with the next message_id from a list,
and lets the test push deliver_sm (receipts, MOs) down the bound session. Kannel (bearerbox + smsbox, the
Debian package) binds to it as a transceiver through :class:`~tests.interop.kannel.KannelBox`, and the tests
check the three paths the later SMSC tests rely on:

1. MT: an HTTP sendsms becomes a submit_sm with the right destination, text and receipt request;
2. receipts: a deliver_sm receipt reaches the message's dlr-url with the right status (our own
   :func:`~carrier_sim.smpp.receipt.format_receipt` writes the receipt text, so Kannel also parses it);
3. MO: a deliver_sm reaches the sms-service get-url with its sender, recipient and text.

They also pin how ``msg-id-type`` behaves (the one Kannel knob that decides whether receipts match at all) and
that a failed start reports Kannel's logs instead of hanging.

Known quirk of the stand-in: smpp34's Server answers Kannel's shutdown unbind, about every other time, by
closing the connection without unbind_resp (seen on the wire with tshark), and bearerbox then sits out its 30 s
shutdown timeout; :meth:`KannelBox.stop` kills it after ``stop_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from carrier_sim.smpp import gsm7
from carrier_sim.smpp.receipt import (
    ESM_CLASS_SMSC_DELIVERY_RECEIPT,
    KANNEL_LIKE,
    MIXED_ID_BASES,
    RECEIPT_ON_SUCCESS_OR_FAILURE,
    REGISTERED_DELIVERY_RECEIPT_MASK,
    MessageState,
    Receipt,
    ReceiptDialect,
    format_receipt,
)
from tests.interop.conftest import require_executable, require_module
from tests.interop.kannel import (
    DLR_PATH,
    DLR_SMSC_SUCCESS,
    DLR_SUCCESS,
    LOCALHOST,
    MO_PATH,
    SMSC_ID,
    Hit,
    KannelBox,
    KannelError,
    SmscEndpoint,
    free_port,
    msg_id_type_for,
)

pytestmark = pytest.mark.interop

SYSTEM_ID = "kannel-test"
PASSWORD = "pw-1234"  # at most 8 characters: password is a C-Octet String of 9 (SMPP 3.4 section 5.2.2)
SYSTEM_TYPE = "VMA"
PHONE = "4915112345678"
SERVICE_NUMBER = "4930555000"
#: Upper bound of every single wait; a healthy run needs well under a second for each.
WAIT = 10.0


@dataclass(frozen=True)
class Binaries:
    """Where Kannel's daemons are installed."""

    bearerbox: str
    smsbox: str


@pytest.fixture
def kannel_binaries() -> Binaries:
    """Kannel's daemons, or a skip (a failure under REQUIRE_INTEROP=1) when the package is missing."""
    return Binaries(require_executable("bearerbox"), require_executable("smsbox"))


@pytest.fixture
def smpp34() -> ModuleType:
    """The smpp34 library, or a skip (a failure under REQUIRE_INTEROP=1)."""
    return require_module("smpp34")


# ------------------------------------------------------------------------------------------ stand-in SMSC


@dataclass(frozen=True)
class Submitted:
    """A submit_sm the stand-in SMSC accepted, and the message_id it answered with."""

    message_id: str
    source_addr: str
    destination_addr: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    short_message: bytes


class StandInSmsc:
    """A minimal SMSC on smpp34's Server: any bind is accepted, every submit_sm gets the next id of ``message_ids``.

    Bound sessions (smpp34 ``Esme`` objects, whose ``deliver_sm`` pushes receipts and MOs) and accepted
    submits are queued for the test to take.
    """

    def __init__(self, smpp34: ModuleType, message_ids: Iterable[str]) -> None:
        self._smpp34 = smpp34
        self.port = free_port()
        self.server: Any = smpp34.Server(LOCALHOST, self.port, system_id="STANDIN")
        self._message_ids = iter(message_ids)
        self.sessions: asyncio.Queue[Any] = asyncio.Queue()
        self.submits: asyncio.Queue[Submitted] = asyncio.Queue()

    def endpoint(self) -> SmscEndpoint:
        """What Kannel needs to bind here."""
        return SmscEndpoint(LOCALHOST, self.port, SYSTEM_ID, PASSWORD, SYSTEM_TYPE)

    async def serve(self) -> None:
        """Answer submits and record sessions until cancelled."""
        while True:
            event = await self.server.next()
            if isinstance(event, self._smpp34.SubmitSmEvent):
                message_id = next(self._message_ids)
                event.accept(message_id)
                self.submits.put_nowait(
                    Submitted(
                        message_id=message_id,
                        source_addr=event.source_addr,
                        destination_addr=event.destination_addr,
                        data_coding=event.data_coding,
                        esm_class=event.esm_class,
                        registered_delivery=event.registered_delivery,
                        short_message=bytes(event.short_message),
                    )
                )
            elif isinstance(event, self._smpp34.Esme):
                self.sessions.put_nowait(event)

    async def next_session(self) -> Any:
        """The next bound session (an smpp34 ``Esme``)."""
        async with asyncio.timeout(WAIT):
            return await self.sessions.get()

    async def next_submit(self) -> Submitted:
        """The next accepted submit_sm."""
        async with asyncio.timeout(WAIT):
            return await self.submits.get()


@contextlib.asynccontextmanager
async def stand_in_smsc(smpp34: ModuleType, message_ids: Iterable[str]) -> AsyncIterator[StandInSmsc]:
    """Run a :class:`StandInSmsc` for the duration of the block."""
    smsc = StandInSmsc(smpp34, message_ids)
    await smsc.server.start()
    try:
        async with asyncio.TaskGroup() as tasks:
            serving = tasks.create_task(smsc.serve())
            try:
                yield smsc
            finally:
                serving.cancel()
    finally:
        await smsc.server.stop()


def receipt_text(message_id: str, dialect: ReceiptDialect, text: str) -> bytes:
    """A "delivered" receipt for ``message_id`` in ``dialect``, as short_message octets."""
    receipt = Receipt(
        message_id=message_id,
        submitted=1,
        delivered=1,
        submit_date=datetime(2025, 1, 2, 3, 4),
        done_date=datetime(2025, 1, 2, 3, 5),
        stat=MessageState.DELIVERED,
        err="0",
        text=text,
    )
    return format_receipt(receipt, dialect).encode("ascii")


def kannel_box(smsc: StandInSmsc, binaries: Binaries, workdir: Path, **options: Any) -> KannelBox:
    """A :class:`KannelBox` bound to ``smsc``, with this test's daemons.

    Stopping waits 2 s, not 5: a clean Kannel stop takes half a second, and when smpp34 drops the unbind (see the
    module docstring) waiting longer only delays the kill.
    """
    return KannelBox(
        smsc.endpoint(), workdir, bearerbox=binaries.bearerbox, smsbox=binaries.smsbox, stop_timeout=2.0, **options
    )


def is_report(kind: int, tag: str) -> Callable[[Hit], bool]:
    """Predicate: a dlr-url hit of report type ``kind`` for the message tagged ``tag``."""

    def matches(hit: Hit) -> bool:
        return hit.params.get("type") == str(kind) and hit.params.get("tag") == tag

    return matches


# --------------------------------------------------------------------------------------------------- tests


async def test_mt_receipt_and_mo_round_trip(kannel_binaries: Binaries, smpp34: ModuleType, tmp_path: Path) -> None:
    """sendsms -> submit_sm; deliver_sm receipt -> dlr-url; deliver_sm MO -> get-url."""
    text = "Your code is 482913"
    async with (
        stand_in_smsc(smpp34, ["7000001", "7000002"]) as smsc,
        kannel_box(smsc, kannel_binaries, tmp_path) as kannel,
    ):
        # KannelBox returned, so bearerbox reports the link online; the SMSC saw a transceiver bind.
        session = await smsc.next_session()
        assert session.system_id == SYSTEM_ID
        assert session.can_receive, "Kannel bound as a transmitter only, not as a transceiver"

        dlr_url = kannel.catcher.dlr_url(tag="mt-1")
        result = await asyncio.to_thread(kannel.send_sms, PHONE, text, from_=SERVICE_NUMBER, dlr_url=dlr_url)
        assert result.accepted, result

        submit = await smsc.next_submit()
        assert submit.destination_addr == PHONE
        assert submit.source_addr == SERVICE_NUMBER
        assert submit.data_coding == 0
        assert gsm7.decode(submit.short_message) == text
        assert submit.registered_delivery & REGISTERED_DELIVERY_RECEIPT_MASK == RECEIPT_ON_SUCCESS_OR_FAILURE

        # dlr-mask 31 includes "accepted by the SMSC", reported on submit_sm_resp.
        accepted = await kannel.catcher.await_for(DLR_PATH, is_report(DLR_SMSC_SUCCESS, "mt-1"), WAIT)
        assert accepted.params["smsc_msg_id"] == submit.message_id

        # An SMPP 3.4 receipt: Appendix B text plus the receipted_message_id and message_state TLVs.
        response = await session.deliver_sm(
            SERVICE_NUMBER,
            receipt_text(submit.message_id, KANNEL_LIKE, text),
            source_addr=PHONE,
            esm_class=ESM_CLASS_SMSC_DELIVERY_RECEIPT,
            tlvs=[
                smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, submit.message_id.encode("ascii") + b"\0"),
                smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([MessageState.DELIVERED])),
            ],
        )
        assert response.command_status == 0

        delivered = await kannel.catcher.await_for(
            DLR_PATH, is_report(DLR_SUCCESS, "mt-1"), WAIT, describe="delivered report for mt-1"
        )
        assert delivered.params["smsc_msg_id"] == submit.message_id
        assert delivered.params["to"] == PHONE
        assert delivered.params["from"] == SERVICE_NUMBER
        assert delivered.params["smsc"] == SMSC_ID
        assert "stat:DELIVRD" in delivered.params["reply"]

        # MO: a phone (international number, TON 1) writes to the service number (TON 0, unknown). Kannel
        # writes an international address with a leading '+'.
        mo_text = "STOP please"
        response = await session.deliver_sm(
            SERVICE_NUMBER,
            gsm7.encode(mo_text),
            source_addr="4917600000001",
            source_addr_ton=1,
            source_addr_npi=1,
            dest_addr_ton=0,
            dest_addr_npi=1,
        )
        assert response.command_status == 0
        mo = await kannel.catcher.await_for(
            MO_PATH, lambda hit: hit.params.get("from") == "+4917600000001", WAIT, describe="MO from +4917600000001"
        )
        assert mo.params["to"] == SERVICE_NUMBER
        assert mo.params["text"] == mo_text
        assert mo.params["smsc"] == SMSC_ID

        # Nothing else went out: one submit, no reply SMS generated by the sms-service.
        await asyncio.sleep(0.5)
        assert smsc.submits.empty()


@pytest.mark.parametrize(
    ("msg_id_type", "matched"),
    [
        pytest.param(msg_id_type_for(submit_id_hex=True, receipt_id_hex=False), True, id="msg-id-type=1"),
        pytest.param(None, False, id="msg-id-type-unset"),
    ],
)
async def test_msg_id_type_reconciles_mixed_id_bases(
    kannel_binaries: Binaries, smpp34: ModuleType, tmp_path: Path, msg_id_type: int | None, matched: bool
) -> None:
    """An SMSC answering in hex and writing receipts in decimal needs ``msg-id-type = 1``; unset, Kannel misses.

    The receipt carries no receipted_message_id TLV (else Kannel would take the hex id from it), only the text.
    """
    hex_id = "1f4a"  # 8010: the receipt says id:0000008010 in MIXED_ID_BASES
    async with (
        stand_in_smsc(smpp34, [hex_id]) as smsc,
        kannel_box(smsc, kannel_binaries, tmp_path, msg_id_type=msg_id_type) as kannel,
    ):
        session = await smsc.next_session()
        dlr_url = kannel.catcher.dlr_url(tag="mixed")
        await asyncio.to_thread(kannel.send_sms, PHONE, "hello", from_=SERVICE_NUMBER, dlr_url=dlr_url)
        submit = await smsc.next_submit()
        await kannel.catcher.await_for(DLR_PATH, is_report(DLR_SMSC_SUCCESS, "mixed"), WAIT)

        text = receipt_text(submit.message_id, MIXED_ID_BASES, "hello")
        assert b"id:0000008010 " in text
        response = await session.deliver_sm(
            SERVICE_NUMBER, text, source_addr=PHONE, esm_class=ESM_CLASS_SMSC_DELIVERY_RECEIPT
        )
        assert response.command_status == 0

        if matched:
            delivered = await kannel.catcher.await_for(DLR_PATH, is_report(DLR_SUCCESS, "mixed"), WAIT)
            assert "stat:DELIVRD" in delivered.params["reply"]
        else:
            # Kannel logs the miss; wait for that line rather than for the absence of a callback.
            deadline = time.monotonic() + WAIT
            while "got DLR but could not find message" not in kannel.log_path("smsc").read_text():
                assert time.monotonic() < deadline, kannel.error("Kannel never reported the unmatched receipt")
                await asyncio.sleep(0.1)
            assert not [hit for hit in kannel.catcher.hits(DLR_PATH) if hit.params.get("type") == str(DLR_SUCCESS)]


def test_unreachable_smsc_fails_fast_with_logs(kannel_binaries: Binaries, tmp_path: Path) -> None:
    """A bind that never comes up raises KannelError quoting Kannel's logs, and leaves no daemon behind."""
    nobody = SmscEndpoint(LOCALHOST, free_port(), SYSTEM_ID, PASSWORD)
    box = KannelBox(
        nobody,
        tmp_path,
        bearerbox=kannel_binaries.bearerbox,
        smsbox=kannel_binaries.smsbox,
        startup_timeout=3.0,
    )
    started = time.monotonic()
    with pytest.raises(KannelError, match="SMPP link") as failure:
        box.start()
    assert time.monotonic() - started < 15
    message = str(failure.value)
    assert "group = smsc" in message  # the config is quoted
    assert "Couldn't connect to SMS center" in message  # and the SMPP log's complaint
    assert box.running() == []


def test_refused_config_fails_with_kannels_reason(kannel_binaries: Binaries, tmp_path: Path) -> None:
    """bearerbox refusing its config (it panics and exits) is reported at once, with the panic quoted."""
    box = KannelBox(
        SmscEndpoint(LOCALHOST, free_port(), SYSTEM_ID, PASSWORD),
        tmp_path,
        bearerbox=kannel_binaries.bearerbox,
        smsbox=kannel_binaries.smsbox,
        smsc_settings={"msg-id-type": 7},  # Kannel accepts 0..3
    )
    with pytest.raises(KannelError, match="bearerbox exited") as failure:
        box.start()
    assert "Invalid value for msg-id-type" in str(failure.value)
    assert box.running() == []
