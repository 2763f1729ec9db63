"""The RCS configuration server over real HTTP: aiohttp client against the app on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import random
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from carrier_sim.net.http_errors import app_runner
from carrier_sim.rcs import (
    CELLULAR_SESSION_COOKIE,
    CONTENT_TYPE,
    DEFAULT_SMS_PORT,
    ENRICHMENT_HEADER,
    OTP_SESSION_COOKIE,
    MsgTerms,
    Provisioner,
    RcsProfile,
    SubscriberState,
    rcs_app,
    validate_document,
)
from carrier_sim.rcs.app import SMS_RETRY_AFTER
from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.segmentation import Segment
from carrier_sim.smpp.udh import split_udh
from carrier_sim.smsc.store import StoreError

IMSI = "310310990001234"
MSISDN = "+15550001234"
WIFI_MSISDN = "+15550009999"
IMEI = "490154203237518"
UCS2 = 0x08

CLIENT_PARAMS = {
    "IMEI": IMEI,
    "terminal_vendor": "Goog",
    "terminal_model": "Pixel 8",
    "terminal_sw_version": "14",
    "client_vendor": "Goog",
    "client_version": "RCSAndrd-1.0",
    "rcs_version": "11.0",
    "rcs_profile": "UP_2.4",
    "provisioning_version": "5.0",
}


@dataclass
class FakeClock:
    t: float = 1000.0

    def now(self) -> float:
        return self.t


@dataclass
class SmsCapture:
    sent: list[tuple[str, Segment]] = field(default_factory=list)
    #: The SMSC's store is full: every part is refused, as MtHandoff.rcs_sms refuses it.
    store_full: bool = False

    def __call__(self, msisdn: str, segment: Segment) -> None:
        if self.store_full:
            raise StoreError(CommandStatus.ESME_RMSGQFUL, "message store full (1 pending)")
        self.sent.append((msisdn, segment))


@dataclass
class Server:
    url: str
    clock: FakeClock
    provisioner: Provisioner
    sms: SmsCapture
    http: aiohttp.ClientSession

    async def get(self, **params: str) -> aiohttp.ClientResponse:
        response = await self.http.get(self.url, params=params)
        await response.read()
        return response

    async def probe(self, msisdn: str | None = MSISDN) -> aiohttp.ClientResponse:
        """The bare plain-HTTP GET a client starts with on cellular, enriched by the network with ``msisdn``."""
        headers = {ENRICHMENT_HEADER: msisdn.lstrip("+")} if msisdn is not None else None
        response = await self.http.get(self.url, headers=headers)
        await response.read()
        return response

    async def cellular_get(self, **params: str) -> aiohttp.ClientResponse:
        """As a client on the mobile network: the bare enriched request, then the real one with its cookie."""
        assert (await self.probe()).status == 200
        return await self.get(**params)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    clock = FakeClock()
    sms = SmsCapture()
    profile = RcsProfile(
        carrier="Example Mobile",
        home_domain="ims.example.net",
        validity=3600,
        token_validity=600,
        terms=MsgTerms("Welcome", "RCS terms of service"),
        pcscf_address="pcscf.ims.example.net",
    )
    provisioner = Provisioner(profile, sms, random.Random(7))
    provisioner.add_subscriber(MSISDN, IMSI)
    provisioner.add_subscriber(WIFI_MSISDN)
    runner = app_runner(rcs_app(provisioner, clock))  # as the door serves it
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    # Cookies from an IP-address host are refused by the default jar; the OTP session uses one.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield Server(f"http://{host}:{port}/", clock, provisioner, sms, http)
    await runner.cleanup()


def _vers(body: bytes) -> tuple[int, int]:
    root = ET.fromstring(body)
    vers = root.find("characteristic[@type='VERS']")
    assert vers is not None
    parms = {p.get("name"): p.get("value") for p in vers.findall("parm")}
    return int(str(parms["version"])), int(str(parms["validity"]))


def _token(body: bytes) -> str:
    root = ET.fromstring(body)
    parm = root.find("characteristic[@type='TOKEN']/parm[@name='token']")
    assert parm is not None
    return str(parm.get("value"))


def _types(body: bytes) -> list[str]:
    return [str(c.get("type")) for c in ET.fromstring(body).findall("characteristic")]


async def test_new_client_gets_full_document_with_token(server: Server) -> None:
    response = await server.cellular_get(vers="0", IMSI=IMSI, **CLIENT_PARAMS)
    body = await response.read()
    assert response.status == 200
    assert response.content_type == CONTENT_TYPE
    assert validate_document(body, token_issued=True, full=True) == []
    assert _vers(body) == (1, 3600)
    assert _types(body) == ["VERS", "TOKEN", "MSG", "APPLICATION", "APPLICATION"]
    assert server.provisioner.token_info(_token(body)) is not None


async def test_up_to_date_client_gets_vers_only(server: Server) -> None:
    first = await (await server.cellular_get(vers="0", IMSI=IMSI)).read()
    token = _token(first)
    response = await server.cellular_get(vers="1", IMSI=IMSI, token=token)
    body = await response.read()
    assert response.status == 200
    assert _types(body) == ["VERS"]
    assert _vers(body) == (1, 3600)
    assert validate_document(body) == []


async def test_reconfiguration_sms_then_new_version(server: Server) -> None:
    segments = server.provisioner.request_reconfiguration(MSISDN)
    assert len(segments) == 1
    msisdn, segment = server.sms.sent[-1]
    assert msisdn == MSISDN
    udh, text = split_udh(segment.short_message)
    ports = udh.port_addressing
    assert ports is not None
    assert ports.destination_port == DEFAULT_SMS_PORT
    # Clients decode the user data as UCS-2 (rcsjta's HttpsProvisioningSMS).
    assert segment.data_coding == UCS2
    assert text.decode("utf-16-be") == f"{IMSI}-rcscfg"
    body = await (await server.cellular_get(vers="1", IMSI=IMSI)).read()
    assert _vers(body) == (2, 3600)
    assert "APPLICATION" in _types(body)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (SubscriberState.RESET, (0, 0)),
        (SubscriberState.RESET_FORBID, (-1, 0)),
        (SubscriberState.DISABLED, (-2, 0)),
        (SubscriberState.DORMANT, (-3, 3600)),
    ],
)
async def test_server_side_states(server: Server, state: SubscriberState, expected: tuple[int, int]) -> None:
    server.provisioner.set_state(MSISDN, state)
    response = await server.cellular_get(vers="1", IMSI=IMSI)
    body = await response.read()
    assert response.status == 200
    assert _types(body) == ["VERS"]
    assert _vers(body) == expected
    assert validate_document(body) == []


async def test_reset_is_one_shot_and_revokes_token(server: Server) -> None:
    token = _token(await (await server.cellular_get(vers="0", IMSI=IMSI)).read())
    server.provisioner.set_state(MSISDN, SubscriberState.RESET)
    # The token is revoked by the answer that delivers the reset, not before (its holder must be told).
    assert _vers(await (await server.cellular_get(vers="1", IMSI=IMSI)).read()) == (0, 0)
    server.http.cookie_jar.clear()  # off the mobile network: the token alone speaks for the client
    assert (await server.get(vers="1", token=token)).status == 511
    body = await (await server.cellular_get(vers="0", IMSI=IMSI)).read()
    assert validate_document(body, token_issued=True, full=True) == []


async def test_a_new_sim_gets_a_new_configuration_and_the_old_one_is_refused(server: Server) -> None:
    old_token = _token(await (await server.cellular_get(vers="0", IMSI=IMSI)).read())
    new_imsi = "310310991001234"
    server.provisioner.change_sim(MSISDN, new_imsi)
    assert (await server.cellular_get(vers="1", IMSI=IMSI)).status == 403  # the old SIM's IMSI is nobody's now
    server.http.cookie_jar.clear()  # off the mobile network: the token alone speaks for the client
    assert (await server.get(vers="1", token=old_token)).status == 511  # its client's token went with it
    body = await (await server.cellular_get(vers="0", IMSI=new_imsi)).read()
    assert validate_document(body, token_issued=True, full=True) == []
    assert server.provisioner.token_info(_token(body)) is not None


async def test_barred_and_unknown_are_forbidden(server: Server) -> None:
    assert (await server.cellular_get(vers="0", IMSI="310310990009999")).status == 403
    server.provisioner.set_barred(MSISDN)
    response = await server.cellular_get(vers="0", IMSI=IMSI)
    assert response.status == 403
    assert response.content_type == "application/problem+json"


async def test_expired_token_gets_511(server: Server) -> None:
    token = _token(await (await server.cellular_get(vers="0", IMSI=IMSI)).read())
    server.clock.t += 599
    assert (await server.get(vers="1", token=token)).status == 200
    server.clock.t += 1
    response = await server.get(vers="1", token=token)
    assert response.status == 511
    assert "token" in (await response.json(content_type=None))["detail"]
    assert (await server.get(vers="1", token="not-a-token")).status == 511


async def test_overloaded_answers_503_with_retry_after(server: Server) -> None:
    server.provisioner.overloaded_retry_after = 120
    response = await server.get(vers="0", IMSI=IMSI)
    assert response.status == 503
    assert response.headers["Retry-After"] == "120"
    server.provisioner.overloaded_retry_after = None
    assert (await server.cellular_get(vers="0", IMSI=IMSI)).status == 200


def _otp_from_sms(server: Server, port: int, msisdn: str = WIFI_MSISDN) -> str:
    sent_to, segment = server.sms.sent[-1]
    assert sent_to == msisdn
    assert segment.data_coding == UCS2
    if port == 0:  # a plain text SMS: no header at all
        assert not segment.esm_class_udhi
        otp = segment.short_message.decode("utf-16-be")
        assert otp.isdigit()
        return otp
    assert segment.esm_class_udhi
    udh, user_data = split_udh(segment.short_message)
    ports = udh.port_addressing
    assert ports is not None
    assert ports.destination_port == port
    assert ports.port_bits == 16
    otp = user_data.decode("utf-16-be")
    assert otp.isdigit()
    assert len(otp) == 6
    return otp


async def test_otp_round_trip_with_cookie(server: Server) -> None:
    response = await server.get(vers="0", msisdn=WIFI_MSISDN, SMS_port="40000", **CLIENT_PARAMS)
    assert response.status == 200
    assert await response.read() == b""
    otp = _otp_from_sms(server, 40000)
    response = await server.get(vers="0", OTP=otp)
    body = await response.read()
    assert response.status == 200
    assert validate_document(body, token_issued=True, full=True) == []
    token = _token(body)
    # The token now stands in for the OTP: the next check needs no SMS.
    sent = len(server.sms.sent)
    body = await (await server.get(vers="1", token=token)).read()
    assert _types(body) == ["VERS"]
    assert len(server.sms.sent) == sent


async def test_an_otp_sms_the_smsc_refuses_is_503_with_retry_after_and_nothing_pending(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.sms.store_full = True
    with caplog.at_level(logging.DEBUG, logger="carrier_sim.rcs"):
        response = await server.get(vers="0", msisdn=WIFI_MSISDN, **CLIENT_PARAMS)
    assert response.status == 503
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"] == str(SMS_RETRY_AFTER)
    assert (await response.json(content_type=None))["status"] == 503
    assert OTP_SESSION_COOKIE not in response.cookies
    assert server.provisioner.pending_otps() == 0
    # The SMSC's refusal is a condition of the run, not a defect: one WARNING line, no traceback.
    (record,) = [r for r in caplog.records if r.name.startswith("carrier_sim.rcs")]
    assert (record.levelno, record.exc_info) == (logging.WARNING, None)
    assert "StoreError" in record.getMessage()
    # Room again: the client's retry gets its OTP.
    server.sms.store_full = False
    assert (await server.get(vers="0", msisdn=WIFI_MSISDN)).status == 200
    response = await server.get(vers="0", OTP=_otp_from_sms(server, DEFAULT_SMS_PORT))
    assert response.status == 200


async def test_a_defect_is_a_problem_json_500_logged_once(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(server.provisioner, "handle", broken)
    with caplog.at_level(logging.DEBUG):
        response = await server.get(vers="0", IMSI=IMSI)
    assert response.status == 500
    assert response.content_type == "application/problem+json"
    assert (await response.json(content_type=None))["status"] == 500
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.name == "carrier_sim.rcs.app"
    assert record.exc_info is not None
    assert record.exc_info[0] is KeyError
    monkeypatch.undo()
    assert (await server.cellular_get(vers="0", IMSI=IMSI)).status == 200


async def test_otp_round_trip_by_msisdn_and_wrong_otp(server: Server) -> None:
    server.http.cookie_jar.clear()
    assert (await server.get(vers="0", msisdn=WIFI_MSISDN)).status == 200
    server.http.cookie_jar.clear()
    otp = _otp_from_sms(server, DEFAULT_SMS_PORT)
    wrong = "000000" if otp != "000000" else "111111"
    assert (await server.get(vers="0", msisdn=WIFI_MSISDN, OTP=wrong)).status == 403
    response = await server.get(vers="0", msisdn=WIFI_MSISDN, OTP=otp)
    assert response.status == 200
    assert validate_document(await response.read(), token_issued=True, full=True) == []
    # An OTP is good once.
    assert (await server.get(vers="0", msisdn=WIFI_MSISDN, OTP=otp)).status == 403


async def test_otp_expires(server: Server) -> None:
    await server.get(vers="0", msisdn=WIFI_MSISDN)
    otp = _otp_from_sms(server, DEFAULT_SMS_PORT)
    server.clock.t += 300
    assert (await server.get(vers="0", OTP=otp)).status == 403


async def test_no_identity_at_all_asks_for_msisdn(server: Server) -> None:
    response = await server.get(vers="0")
    assert response.status == 403
    assert "msisdn" in (await response.json(content_type=None))["detail"]
    assert server.sms.sent == []


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"IMSI": IMSI}, "vers"),
        ({"vers": "abc"}, "vers"),
        ({"vers": "-9"}, "vers"),
        ({"vers": "0", "IMSI": "12"}, "IMSI"),
        ({"vers": "0", "IMEI": "490154203237519"}, "IMEI"),
        ({"vers": "0", "msisdn": "call-me"}, "msisdn"),
        ({"vers": "0", "msisdn": WIFI_MSISDN, "SMS_port": "70000"}, "SMS_port"),
        # These crashed int() after str.isdigit() let them through: 500 with a traceback.
        ({"vers": "0", "msisdn": WIFI_MSISDN, "SMS_port": "\u00b2"}, "SMS_port"),
        ({"vers": "0", "msisdn": WIFI_MSISDN, "SMS_port": "9" * 4301}, "SMS_port"),
        ({"vers": "0", "msisdn": WIFI_MSISDN, "SMS_port": "\u0663"}, "SMS_port"),
        ({"vers": "1_0", "msisdn": WIFI_MSISDN}, "vers"),
        ({"vers": "0", "OTP": "12 34"}, "OTP"),
        ({"vers": "0", "rcs_profile": "UP 2.4; drop"}, "rcs_profile"),
        ({"vers": "0", "terminal_model": "x" * 65}, "terminal_model"),
        ({"vers": "0", "terminal_vendor": "a\x01b"}, "terminal_vendor"),
        # docs/rcs.md's "printable": C1 controls, separators, noncharacters and bidi overrides are not.
        ({"vers": "0", "friendly_device_name": "\x85\x9b"}, "friendly_device_name"),
        ({"vers": "0", "friendly_device_name": "a\u2028b"}, "friendly_device_name"),
        ({"vers": "0", "friendly_device_name": "\uffff"}, "friendly_device_name"),
        ({"vers": "0", "friendly_device_name": "\u202eevil"}, "friendly_device_name"),
    ],
)
async def test_garbage_parameters_get_400_and_server_keeps_serving(
    server: Server, params: dict[str, str], parameter: str
) -> None:
    response = await server.get(**params)
    assert response.status == 400
    problem = await response.json(content_type=None)
    assert problem["parameter"] == parameter
    assert parameter in problem["detail"]
    assert server.sms.sent == []
    assert (await server.cellular_get(vers="0", IMSI=IMSI)).status == 200


_ASKS_FOR_AN_OTP = f"vers=0&msisdn=%2B{WIFI_MSISDN[1:]}"


@pytest.mark.parametrize(
    ("query", "parameter", "sent"),
    [
        (f"{_ASKS_FOR_AN_OTP}&terminal_model=%FF%FE%C0", "terminal_model", r"b'\xff\xfe\xc0'"),
        (f"{_ASKS_FOR_AN_OTP}&friendly_device_name=caf%E9", "friendly_device_name", r"b'caf\xe9'"),  # Latin-1
        (f"{_ASKS_FOR_AN_OTP}&client_vendor=%80", "client_vendor", r"b'\x80'"),
        # An encoded surrogate: UTF-8 has no bytes for one.
        (f"{_ASKS_FOR_AN_OTP}&friendly_device_name=%ED%A0%80", "friendly_device_name", r"b'\xed\xa0\x80'"),
        ("vers=0&msisdn=%FF", "msisdn", r"b'\xff'"),
    ],
    ids=["bytes", "latin-1", "lone-continuation", "surrogate", "msisdn"],
)
async def test_percent_encoded_bytes_that_are_not_utf8_get_400_naming_the_parameter(
    server: Server, query: str, parameter: str, sent: str
) -> None:
    # yarl decoded them as U+FFFD: the value was accepted (200, an OTP sent) and the client's bytes were lost.
    async with server.http.get(URL(f"{server.url}?{query}", encoded=True)) as response:
        assert response.status == 400
        problem = await response.json(content_type=None)
    assert problem["parameter"] == parameter
    assert "UTF-8" in problem["detail"]
    assert sent in problem["detail"]
    assert server.sms.sent == []


async def test_utf8_and_undecodable_unknown_parameters_are_still_taken(server: Server) -> None:
    # Percent-encoded UTF-8 is the name itself; bytes that are not UTF-8 in an unknown parameter are ignored with it.
    url = URL(f"{server.url}?{_ASKS_FOR_AN_OTP}&friendly_device_name=caf%C3%A9+%E2%82%AC&x_vendor=%FF&%FF=1",
              encoded=True)
    async with server.http.get(url) as response:
        assert response.status == 200
    _otp_from_sms(server, DEFAULT_SMS_PORT)


async def test_repeated_parameter_gets_400(server: Server) -> None:
    response = await server.http.get(server.url + "?vers=0&vers=1&IMSI=" + IMSI)
    assert response.status == 400
    assert (await response.json(content_type=None))["parameter"] == "vers"


async def test_repetition_counts_only_for_known_parameters_with_a_value(server: Server) -> None:
    # docs/rcs.md: unknown parameters are ignored and an empty value counts as absent, repeated or not.
    for query in ("&x_vendor_ext=1&x_vendor_ext=2", "&token=&token=", "&IMSI=&IMSI="):
        response = await server.http.get(server.url + "?vers=0&msisdn=%2B" + WIFI_MSISDN[1:] + query)
        assert response.status == 200, query
    # One empty and one real value: the real one is the parameter.
    response = await server.http.get(server.url + "?vers=0&msisdn=&msisdn=%2B" + WIFI_MSISDN[1:] + "&SMS_port=0")
    assert response.status == 200
    _otp_from_sms(server, 0)
    response = await server.http.get(server.url + "?vers=0&token=a&token=b")
    assert response.status == 400
    assert (await response.json(content_type=None))["parameter"] == "token"


async def test_unknown_parameters_are_ignored(server: Server) -> None:
    response = await server.cellular_get(vers="0", IMSI=IMSI, some_future_param="x")
    assert response.status == 200


async def test_unknown_path_and_other_methods_get_problem_json(server: Server) -> None:
    async with server.http.put(server.url) as response:
        assert response.status == 405
        assert response.content_type == "application/problem+json"
        # RFC 9110 15.5.6: a 405 must say which methods the resource takes.
        assert set(response.headers["Allow"].split(", ")) == {"GET", "POST"}
        assert (await response.json(content_type=None))["status"] == 405
    async with server.http.get(server.url + "nope") as response:
        assert response.status == 404
        assert response.content_type == "application/problem+json"
        assert "/nope" in (await response.json(content_type=None))["detail"]
    assert (await server.cellular_get(vers="0", IMSI=IMSI)).status == 200


async def test_head_is_405_and_provisions_nothing(server: Server) -> None:
    # RFC 9110 9.2.1: HEAD is safe. Served as GET (aiohttp's default), it sent an OTP SMS and replaced the client's
    # token with one nobody received, so the client's next request got 511.
    token = _token(await (await server.cellular_get(vers="0", IMSI=IMSI)).read())
    server.http.cookie_jar.clear()
    for params in ({"vers": "0", "msisdn": WIFI_MSISDN}, {"vers": "0", "token": token}):
        async with server.http.head(server.url, params=params) as response:
            assert response.status == 405
            assert set(response.headers["Allow"].split(", ")) == {"GET", "POST"}
            assert OTP_SESSION_COOKIE not in response.cookies
    assert server.sms.sent == []
    assert server.provisioner.pending_otps() == 0
    body = await (await server.get(vers="1", token=token)).read()
    assert _types(body) == ["VERS"]  # the token still stands


async def _raw_exchange(url: str, request: bytes) -> bytes:
    host, _, port = url.removeprefix("http://").rstrip("/").rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    answer = await reader.read()  # aiohttp closes the connection after refusing malformed HTTP
    writer.close()
    return answer


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NOT AN HTTP REQUEST LINE\r\n\r\n",
        b"GET / HTTP/9\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nx-correlator: \x01\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    ],
    ids=["request-line", "http-version", "control-char-header", "100KB-header"],
)
async def test_malformed_http_gets_400_and_one_log_line_without_traceback(
    server: Server, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="aiohttp"):
        answer = await _raw_exchange(server.url, request_bytes)
    assert answer.split(b" ", 2)[1] == b"400"
    records = [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert records
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in records)
    assert "Traceback" not in caplog.text
    assert (await server.cellular_get(vers="0", IMSI=IMSI)).status == 200


async def test_the_bare_cellular_request_gets_a_cookie_or_511(server: Server) -> None:
    # rcsjta's getConfig and Samsung's FetchHttp start with a parameterless plain-HTTP GET on cellular.
    response = await server.probe()
    assert response.status == 200
    assert await response.read() == b""
    assert CELLULAR_SESSION_COOKIE in response.cookies
    # Not enriched (not the mobile network) or not this carrier's subscriber: 511 sends the client to the OTP.
    assert (await server.probe(None)).status == 511
    assert (await server.probe("15559990000")).status == 511
    assert server.sms.sent == []


async def test_parameters_in_a_post_body_get_400_not_the_bare_request(server: Server) -> None:
    # The body is never read: with no query, a form POST was taken for the bare cellular request (a session opened).
    form = {"vers": "0", "msisdn": MSISDN[1:]}
    async with server.http.post(server.url, data=form, headers={ENRICHMENT_HEADER: MSISDN[1:]}) as response:
        assert response.status == 400
        assert response.content_type == "application/problem+json"
        assert "query" in (await response.json(content_type=None))["detail"]
        assert CELLULAR_SESSION_COOKIE not in response.cookies
    # With the parameters in the query, POST is served as GET is, body or not.
    async with server.http.post(server.url, params={"vers": "0", "msisdn": WIFI_MSISDN}, data=b"x") as response:
        assert response.status == 200
    _otp_from_sms(server, DEFAULT_SMS_PORT)
    async with server.http.post(server.url, headers={ENRICHMENT_HEADER: MSISDN[1:]}) as response:
        assert response.status == 200  # the bare request, without a body
        assert CELLULAR_SESSION_COOKIE in response.cookies


async def test_an_imsi_without_a_cellular_session_gets_the_otp_path(server: Server) -> None:
    # rcsjta and Samsung send IMSI (and an empty token) on Wi-Fi too: the IMSI proves nothing there.
    response = await server.get(vers="0", IMSI=IMSI, IMEI=IMEI, msisdn=MSISDN, token="", SMS_port="40000")
    assert response.status == 200
    assert await response.read() == b""
    assert OTP_SESSION_COOKIE in response.cookies
    otp = _otp_from_sms(server, 40000, MSISDN)
    # Without msisdn the client must ask the user for it.
    assert (await server.get(vers="0", IMSI=IMSI)).status == 403
    body = await (await server.get(OTP=otp)).read()
    assert validate_document(body, token_issued=True, full=True) == []


async def test_the_otp_answer_is_otp_alone_with_the_cookie(server: Server) -> None:
    # rcsjta: "?OTP=<otp>"; Samsung: clears every parameter, adds OTP, echoes the Set-Cookie as Cookie.
    first = await server.get(vers="0", msisdn=WIFI_MSISDN, IMSI="", IMEI="", token="", SMS_port="0")
    assert first.status == 200
    cookie = first.cookies[OTP_SESSION_COOKIE].value
    otp = _otp_from_sms(server, 0)
    server.http.cookie_jar.clear()
    async with server.http.get(server.url, params={"OTP": otp},
                               headers={"Cookie": f"{OTP_SESSION_COOKIE}={cookie}"}) as response:
        body = await response.read()
        assert response.status == 200
    assert validate_document(body, token_issued=True, full=True) == []
    assert _vers(body) == (1, 3600)


async def test_a_raw_plus_in_msisdn_arrives_as_a_space_and_is_accepted(server: Server) -> None:
    url = URL(server.url + "?vers=0&msisdn=+" + WIFI_MSISDN.lstrip("+"), encoded=True)
    async with server.http.get(url) as response:
        assert response.status == 200
    _otp_from_sms(server, DEFAULT_SMS_PORT)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_its_content_encoding_is_one_log_line_and_the_server_keeps_serving(
    server: Server, encoding: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The server reads the query, never the body; aiohttp meets the broken body as it drains it after the answer,
    # and logged that as an ERROR "Unhandled exception" with two tracebacks.
    request = (b"POST /?vers=0 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
               b"Content-Encoding: " + encoding.encode() + b"\r\nContent-Length: 7\r\nConnection: close\r\n\r\nnotgzip")
    plain = request.replace(b"Content-Encoding: " + encoding.encode() + b"\r\n", b"")
    expected = (await _raw_exchange(server.url, plain)).split(b" ", 2)[1]
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        answer = await _raw_exchange(server.url, request)
        assert (await server.cellular_get(vers="0", IMSI=IMSI)).status == 200
    assert answer.split(b" ", 2)[1] == expected  # the body plays no part in the answer
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "Traceback" not in caplog.text
    [line] = [r for r in caplog.records if r.name.startswith("aiohttp") and r.levelno == logging.WARNING]
    assert line.exc_info is None
    assert "ContentEncodingError" in line.getMessage()
