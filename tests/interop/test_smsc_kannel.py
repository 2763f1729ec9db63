"""Kannel (bearerbox + smsbox from the Debian package) as a real ESME against this project's SMSC.

Messages sent through Kannel's sendsms HTTP interface arrive at the emulated SMSC and are delivered to the
subscriber; their receipts reach Kannel's dlr-url; an MO from a subscriber reaches Kannel's sms-service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

import pytest

from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.smpp import gsm7
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig
from carrier_sim.smsc.store import StoredMessage
from carrier_sim.smsc.subscribers import Condition, SubscriberRegistry
from tests.interop.conftest import require_executable
from tests.interop.kannel import DLR_PATH, DLR_SMSC_SUCCESS, MO_PATH, Hit, KannelBox, SmscEndpoint

pytestmark = pytest.mark.interop

WAIT = 15.0
PHONE = "4915112345678"
BARRED = "4915199999999"
SERVICE = "4930555000"


async def test_kannel_mt_receipts_and_mo_through_our_smsc(tmp_path: Path) -> None:
    bearerbox, smsbox = require_executable("bearerbox"), require_executable("smsbox")
    delivered: list[StoredMessage] = []
    subscribers = SubscriberRegistry()
    subscribers.set(BARRED, Condition.BARRED)
    smsc = Smsc(
        SmscConfig(name="carrier-a", accounts=(Account("kannel", "pw-1234"),), enquire_link_interval=30.0),
        subscribers,
        mt_listener=lambda message, now: delivered.append(message),
    )
    server = SmscServer(smsc)
    _, port = await server.listen("127.0.0.1", 0)
    endpoint = SmscEndpoint("127.0.0.1", port, "kannel", "pw-1234")
    try:
        async with KannelBox(endpoint, tmp_path, bearerbox=bearerbox, smsbox=smsbox, stop_timeout=3.0) as kannel:
            assert smsc.stats.binds == 1
            ok_url = kannel.catcher.dlr_url(tag="ok")
            barred_url = kannel.catcher.dlr_url(tag="barred")
            for to, url, text in ((PHONE, ok_url, "Your code is 482913"), (BARRED, barred_url, "blocked?")):
                result = await asyncio.to_thread(kannel.send_sms, to, text, from_=SERVICE, dlr_url=url)
                assert result.accepted, result

            def report(tag: str, kind: int) -> Awaitable[Hit]:
                return kannel.catcher.await_for(
                    DLR_PATH, lambda h: h.params.get("tag") == tag and h.params.get("type") == str(kind), WAIT,
                    describe=f"type {kind} report for {tag}",
                )

            # Kannel's report types: 1 delivered, 2 failed (non-delivery), 8 accepted by the SMSC.
            accepted = await report("ok", DLR_SMSC_SUCCESS)
            ok = await report("ok", 1)
            failed = await report("barred", 2)
            assert ok.params["smsc_msg_id"] == accepted.params["smsc_msg_id"]
            assert "stat:DELIVRD" in ok.params["reply"]
            assert "stat:REJECTD" in failed.params["reply"]

            assert [m.destination_addr for m in delivered] == [PHONE]
            assert gsm7.decode(delivered[0].data) == "Your code is 482913"
            assert delivered[0].source_addr == SERVICE

            assert smsc.inject_mo("4917600000001", SERVICE, "STOP please", server.clock())
            server.service()
            mo = await kannel.catcher.await_for(
                MO_PATH, lambda h: h.params.get("text") == "STOP please", WAIT, describe="MO STOP please"
            )
            assert mo.params["to"].lstrip("+") == SERVICE  # sent as TON 1 (international): Kannel adds "+"
            assert mo.params["from"].lstrip("+") == "4917600000001"
    finally:
        await server.shutdown()
    # Kannel asks for registered_delivery 0x11 with dlr-mask 31: an intermediate notification (ENROUTE) and a
    # final receipt per message, and it acknowledged all four.
    assert smsc.stats.receipts_acked == 4
    # Kannel answered every deliver_sm and unbound cleanly: its conformance verdicts hold no failure.
    checks = [c for s in smsc.verdicts() for c in s["checks"]]  # type: ignore[attr-defined]
    assert checks
    assert not [c for c in checks if c["verdict"] == "fail"], checks
