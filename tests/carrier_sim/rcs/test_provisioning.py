"""The provisioner's decisions without HTTP: tokens, OTPs, states and the validation of what it is given."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from carrier_sim.rcs import (
    ConfigurationIssued,
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
