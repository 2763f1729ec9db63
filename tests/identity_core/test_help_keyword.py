"""HELP / INFO to the gateway number: one SMS saying what the number is, within the REG-REQ velocity limits."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path

import aiohttp
import pytest

from identity_core.help_keyword import DEFAULT_HELP_TEXT, help_text_problem, is_help_request
from identity_core.reg_protocol import format_reg_req
from identity_core.sms_text import encode_mt_text
from tests.identity_core.conftest import Carrier, free_port, start_identity, write_config

PHONE = "447700900123"
OTHER = "447700900124"
HELP = "Example Messenger verifies your number here. Questions: example.org/help"


@pytest.mark.parametrize("text", ["HELP", "help", "Help", "  INFO\n", "\tinfo ", "hElP\r\n"])
def test_help_keywords(text: str) -> None:
    assert is_help_request(text)


@pytest.mark.parametrize("text", ["", "HELP ME", "HELPINFO", "H E L P", "STOP", "ınfo", "REG-REQ?v=3", "HELP!"])
def test_other_texts_are_not_help(text: str) -> None:
    assert not is_help_request(text)


def test_default_help_text_fits_one_gsm_sms() -> None:
    data_coding, data, fits = encode_mt_text(DEFAULT_HELP_TEXT)
    assert (data_coding, fits) == (0x00, True)
    assert len(data) <= 160
    assert "identity-core" in DEFAULT_HELP_TEXT
    assert help_text_problem(DEFAULT_HELP_TEXT) is None


@pytest.mark.parametrize(
    ("text", "fits"),
    [("x" * 160, True), ("x" * 161, False), ("€" * 80, True), ("€" * 81, False), ("ж" * 70, True),
     ("ж" * 71, False), ("   ", False)],
)
def test_help_text_must_fit_one_sms(text: str, fits: bool) -> None:
    assert (help_text_problem(text) is None) is fits


async def _metric(http: aiohttp.ClientSession, labels: str, want: float, name: str = "identity_refusals_total") -> None:
    """Wait until the metric reaches ``want`` (MOs are handled concurrently with the test)."""
    async with asyncio.timeout(10):
        while True:
            async with http.get("/metrics") as r:
                text = await r.text()
            found = re.search(rf"^{re.escape(name)}{{{re.escape(labels)}}} (\S+)$", text, re.M)
            if found and float(found.group(1)) == want:
                return
            await asyncio.sleep(0.05)


async def test_help_is_answered_by_sms_within_the_registration_limits(carrier: Carrier, tmp_path: Path) -> None:
    config = write_config(tmp_path, carrier.port, free_port(), limits="reg_per_number = [0.001, 2.0]",
                          messages=f'help = "{HELP}"')
    identity = await start_identity(config)
    try:
        async with aiohttp.ClientSession(identity.base_url) as http:
            carrier.phone_sends(PHONE, "HELP")
            assert await carrier.next_mt(PHONE) == HELP
            carrier.phone_sends(PHONE, "  info \n")
            assert await carrier.next_mt(PHONE) == HELP

            # Two answers used the number's burst: a third HELP, and a REG-REQ after it, get nothing.
            carrier.phone_sends(PHONE, "help")
            await _metric(http, 'reason="rate_limited",stage="help"', 1)
            carrier.phone_sends(PHONE, format_reg_req(secrets.token_hex(32), 1))
            await _metric(http, 'reason="rate_limited",stage="reg"', 1)

            # Anything else stays refused silently, as before.
            carrier.phone_sends(OTHER, "HELP ME")
            await _metric(http, 'reason="malformed",stage="reg"', 1)
            carrier.phone_sends(OTHER, "Help")
            assert await carrier.next_mt(OTHER) == HELP
            assert not carrier.inbox.get(PHONE)
            assert not carrier.inbox.get(OTHER)
            await _metric(http, 'carrier="carrier-a",outcome="sent"', 3, "identity_help_replies_total")
    finally:
        assert await identity.stop() == 0
