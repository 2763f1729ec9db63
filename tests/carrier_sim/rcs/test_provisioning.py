"""The provisioner's decisions without HTTP: tokens, OTPs, states and the validation of what it is given."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from carrier_sim.rcs import (
    CellularSessionOpened,
    ConfigurationIssued,
    InvalidParameter,
    OtpSent,
    Provisioner,
    RcsProfile,
    Refused,
    parse_request,
)
from carrier_sim.smpp.segmentation import Segment
from carrier_sim.smpp.udh import split_udh

IMSI = "310310990001234"
MSISDN = "+15550001234"
WIFI_MSISDN = "+15550009999"  # held without an IMSI, as the doors hold numbers no phone of the scenario has
DEVICE_IMSI = "208150123456789"  # a real device's SIM, unknown to the door
OTHER_IMSI = "208150987654321"


@dataclass
class Door:
    provisioner: Provisioner
    sms: list[tuple[str, Segment]] = field(default_factory=list)

    def otp(self) -> str:
        _, data = split_udh(self.sms[-1][1].short_message)
        return data.decode("utf-16-be")

    def token_by_otp(self, msisdn: str, now: float, **params: str) -> ConfigurationIssued:
        """The Wi-Fi path as rcsjta walks it: msisdn (and whatever else) first, then ``OTP`` alone."""
        sent = self.provisioner.handle(parse_request({"vers": "0", "msisdn": msisdn, **params}), now)
        assert isinstance(sent, OtpSent)
        issued = self.provisioner.handle(parse_request({"OTP": self.otp()}), now, otp_session=sent.session)
        assert isinstance(issued, ConfigurationIssued)
        return issued


@pytest.fixture
def door() -> Door:
    sms: list[tuple[str, Segment]] = []
    provisioner = Provisioner(RcsProfile("Example", "ims.example.net"), lambda m, s: sms.append((m, s)),
                              random.Random(3))
    provisioner.add_subscriber(MSISDN, IMSI)
    provisioner.add_subscriber(WIFI_MSISDN)
    return Door(provisioner, sms)


# -- a token is bound to the IMSI it was issued to, not to the door's record -------------------------------


@pytest.mark.parametrize("msisdn", [WIFI_MSISDN, MSISDN], ids=["no-imsi-on-record", "another-imsi-on-record"])
def test_a_wifi_client_sending_its_sims_imsi_keeps_its_token(door: Door, msisdn: str) -> None:
    # rcsjta and Samsung send their SIM's IMSI on every request; the token must not cost a new OTP each time.
    issued = door.token_by_otp(msisdn, 10.0, IMSI=DEVICE_IMSI)
    sent = len(door.sms)
    again = door.provisioner.handle(
        parse_request({"vers": str(issued.version), "IMSI": DEVICE_IMSI, "token": issued.token.token}), 20.0
    )
    assert not isinstance(again, Refused), again
    assert len(door.sms) == sent
    assert issued.token.imsi == DEVICE_IMSI  # the OTP answer carries no IMSI: the one that asked for it counts


def test_a_token_presented_with_another_sims_imsi_is_refused(door: Door) -> None:
    # The SIM moved to another device or the token was copied: a SIM swap must authenticate afresh.
    issued = door.token_by_otp(WIFI_MSISDN, 10.0, IMSI=DEVICE_IMSI)
    answer = door.provisioner.handle(
        parse_request({"vers": "1", "IMSI": OTHER_IMSI, "token": issued.token.token}), 20.0
    )
    assert isinstance(answer, Refused)
    assert answer.status == 511


def test_a_token_issued_without_an_imsi_is_not_refused_for_one(door: Door) -> None:
    issued = door.token_by_otp(WIFI_MSISDN, 10.0)
    answer = door.provisioner.handle(
        parse_request({"vers": "1", "IMSI": DEVICE_IMSI, "token": issued.token.token}), 20.0
    )
    assert not isinstance(answer, Refused), answer


# -- integers are ASCII decimal, bounded, or 400 ------------------------------------------------------------


@pytest.mark.parametrize(
    "port",
    ["\u00b2", "9" * 4301, "\u0663", "\uff11", " 1", "+1", "1_0", "123456"],
    ids=["superscript", "4301-digits", "arabic-indic", "full-width", "space", "plus", "underscore", "6-digits"],
)
def test_an_sms_port_that_is_not_ascii_digits_is_an_invalid_parameter(port: str) -> None:
    # str.isdigit() admitted these: '²' and 4301 digits then crashed int() (500), '٣' became port 3.
    with pytest.raises(InvalidParameter) as raised:
        parse_request({"vers": "0", "msisdn": WIFI_MSISDN, "SMS_port": port})
    assert raised.value.parameter == "SMS_port"


@pytest.mark.parametrize(
    "vers",
    ["1_0", "\uff11", " 7 ", "7 ", "+3", "\u0661", "9" * 11, "9" * 4301, "--1", ""],
)
def test_a_vers_that_is_not_a_plain_decimal_integer_is_an_invalid_parameter(vers: str) -> None:
    params = {"vers": vers, "msisdn": WIFI_MSISDN}
    if vers == "":  # empty counts as absent, and vers is then required
        params["IMSI"] = IMSI
    with pytest.raises(InvalidParameter) as raised:
        parse_request(params)
    assert raised.value.parameter == "vers"


def test_plain_integers_still_parse() -> None:
    assert parse_request({"vers": "-1", "SMS_port": "0"}).vers == -1
    assert parse_request({"vers": "2147483647", "SMS_port": "65535"}).sms_port == 0xFFFF


def test_header_enrichment_takes_ascii_digits_only(door: Door) -> None:
    opened = door.provisioner.handle(parse_request({}), 1.0, enriched_msisdn=MSISDN[1:])
    assert isinstance(opened, CellularSessionOpened)
    arabic = MSISDN[1:].translate({ord("0") + d: 0x0660 + d for d in range(10)})  # Arabic-Indic digits
    refused = door.provisioner.handle(parse_request({}), 1.0, enriched_msisdn=arabic)
    assert isinstance(refused, Refused)
    assert refused.status == 511
