"""The provisioner's decisions without HTTP: tokens, OTPs, states and the validation of what it is given."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from carrier_sim.rcs import (
    CellularSessionOpened,
    ConfigurationIssued,
    InvalidParameter,
    MsgTerms,
    OtpSent,
    Provisioner,
    RcsProfile,
    Refused,
    SubscriberState,
    VersionAnswered,
    build_document,
    parse_request,
    validate_document,
)
from carrier_sim.rcs.provisioning import SmsNotSent, Subscriber, TokenGrant
from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.segmentation import Segment
from carrier_sim.smpp.udh import split_udh
from carrier_sim.smsc.store import StoreError

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


TEXT_PARAMETERS = ["terminal_vendor", "terminal_model", "terminal_sw_version", "client_vendor", "client_version",
                   "app", "friendly_device_name"]


@pytest.mark.parametrize("name", TEXT_PARAMETERS)
@pytest.mark.parametrize(
    "value",
    ["\x01", "a\x7f", "\x85\x9b", "Pixel\x85", "a\u2028b", "a\u2029b", "\uffff", "\ufffe", "a\ufdd0",
     "\U0001ffff", "\u202eevil", "\u2066x\u2069", "\u200eRLM", "\ufeffBOM", "soft\u00adhyphen", "\udcff",
     "x" * 65],
    ids=["C0", "DEL", "C1-NEL-CSI", "C1-trailing", "U+2028", "U+2029", "U+FFFF", "U+FFFE", "U+FDD0", "U+1FFFF",
         "RLO", "bidi-isolate", "LRM", "BOM", "soft-hyphen", "lone-surrogate", "65-chars"],
)
def test_a_text_parameter_that_is_not_printable_is_an_invalid_parameter(name: str, value: str) -> None:
    # docs/rcs.md: "printable, at most 64 characters". Only C0 and DEL were refused; C1 controls, separators,
    # noncharacters and bidi overrides (which make a name display as another) went through.
    with pytest.raises(InvalidParameter) as refused:
        parse_request({"vers": "0", name: value})
    assert refused.value.parameter == name


@pytest.mark.parametrize("name", TEXT_PARAMETERS)
@pytest.mark.parametrize(
    "value",
    ["Zoë's Pixel", "小米手机", "田中\u3000太郎のiPhone", "Galaxy S24 Ultra", "Телефон Ани", "هاتف\u200cسارة",
     "\U0001f469\u200d\U0001f4bb laptop", "\u00a0nbsp", "é" * 64, "!", "\U0001fae8"],
    ids=["latin-1", "CJK", "ideographic-space", "ascii", "cyrillic", "arabic-ZWNJ", "emoji-ZWJ", "NBSP", "64-chars",
         "punctuation", "newer-emoji"],
)
def test_printable_non_ascii_text_parameters_are_accepted(name: str, value: str) -> None:
    assert getattr(parse_request({"vers": "0", name: value}), name) == value


@pytest.mark.parametrize("name", [*TEXT_PARAMETERS, "vers", "msisdn", "IMSI", "token"])
def test_a_value_with_bytes_that_are_not_utf8_is_an_invalid_parameter(name: str) -> None:
    # The adapter carries undecodable bytes as surrogateescape does; they used to arrive as U+FFFD and pass.
    value = b"caf\xe9".decode("utf-8", "surrogateescape")
    with pytest.raises(InvalidParameter) as refused:
        parse_request({"vers": "0", name: value})
    assert refused.value.parameter == name
    assert str(refused.value) == f"{name}: b'caf\\xe9' is not UTF-8"


def test_plain_integers_still_parse() -> None:
    assert parse_request({"vers": "-1", "SMS_port": "0"}).vers == -1
    assert parse_request({"vers": "2147483647", "SMS_port": "65535"}).sms_port == 0xFFFF


# -- an IMSI is checked for its syntax (3GPP TS 23.003 2.2), not against stdnum's operator table ---------------


@pytest.mark.parametrize("imsi", ["123150000000001", "100010000000001", "12315000000001", "001010123", "123456"],
                         ids=["mcc-123", "mcc-100", "14-digits", "test-mcc-001", "6-digits"])
def test_an_imsi_with_an_mcc_stdnum_does_not_know_is_accepted(imsi: str) -> None:
    # A scenario's carrier may have any 3-digit MCC (its schema says so); stdnum.imsi.is_valid refused 123 and 100.
    assert parse_request({"vers": "0", "IMSI": imsi}).imsi == imsi


@pytest.mark.parametrize("imsi", ["12345", "1" * 16, "31031099000123x", "٣" * 15, "+310310990001234"])
def test_an_imsi_that_is_not_6_to_15_digits_is_an_invalid_parameter(imsi: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        parse_request({"vers": "0", "IMSI": imsi})
    assert refused.value.parameter == "IMSI"


def test_a_subscriber_of_a_carrier_with_mcc_123_is_provisioned_over_cellular() -> None:
    imsi = "123159000000000"  # NumberingPlan.imsi_of phone 0 in a scenario whose carrier has mcc 123, mnc 15
    provisioner = Provisioner(RcsProfile("Example", "ims.example.net"), lambda m, s: None, random.Random(3))
    provisioner.add_subscriber(MSISDN, imsi)
    opened = provisioner.handle(parse_request({}), 1.0, enriched_msisdn=MSISDN)
    assert isinstance(opened, CellularSessionOpened)
    answer = provisioner.handle(parse_request({"vers": "0", "IMSI": imsi}), 2.0, cellular_session=opened.session)
    assert isinstance(answer, ConfigurationIssued)


def test_header_enrichment_takes_ascii_digits_only(door: Door) -> None:
    opened = door.provisioner.handle(parse_request({}), 1.0, enriched_msisdn=MSISDN[1:])
    assert isinstance(opened, CellularSessionOpened)
    arabic = MSISDN[1:].translate({ord("0") + d: 0x0660 + d for d in range(10)})  # Arabic-Indic digits
    refused = door.provisioner.handle(parse_request({}), 1.0, enriched_msisdn=arabic)
    assert isinstance(refused, Refused)
    assert refused.status == 511


# -- pending OTPs: one per number, found by msisdn, purged after expiry --------------------------------------


def _ask_otp(door: Door, msisdn: str, now: float) -> tuple[str, str]:
    sent = door.provisioner.handle(parse_request({"vers": "0", "msisdn": msisdn}), now)
    assert isinstance(sent, OtpSent)
    return sent.session, door.otp()


def _answer(door: Door, otp: str, now: float, **kwargs: str | None) -> object:
    msisdn = kwargs.pop("msisdn", None)
    params = {"OTP": otp} if msisdn is None else {"OTP": otp, "vers": "0", "msisdn": msisdn}
    return door.provisioner.handle(parse_request(params), now, otp_session=kwargs.get("otp_session"))


def test_a_new_otp_supersedes_the_numbers_pending_one_and_leaves_the_others(door: Door) -> None:
    old_session, old_otp = _ask_otp(door, WIFI_MSISDN, 1.0)
    other_session, other_otp = _ask_otp(door, MSISDN, 1.0)
    new_session, new_otp = _ask_otp(door, WIFI_MSISDN, 2.0)
    assert door.provisioner.pending_otps() == 2
    superseded = _answer(door, old_otp, 3.0, otp_session=old_session)
    assert isinstance(superseded, Refused)
    assert superseded.status == 403
    assert isinstance(_answer(door, other_otp, 3.0, otp_session=other_session), ConfigurationIssued)
    assert isinstance(_answer(door, new_otp, 3.0, otp_session=new_session), ConfigurationIssued)
    assert door.provisioner.pending_otps() == 0


def test_an_otp_sms_the_smsc_refuses_leaves_no_pending_otp_and_keeps_the_one_sent(door: Door) -> None:
    old_session, old_otp = _ask_otp(door, WIFI_MSISDN, 1.0)
    sent = len(door.sms)

    def store_full(_msisdn: str, _segment: Segment) -> None:
        raise StoreError(CommandStatus.ESME_RMSGQFUL, "message store full")  # what MtHandoff.rcs_sms raises

    door.provisioner.send_sms = store_full
    for msisdn in (WIFI_MSISDN, MSISDN):
        with pytest.raises(SmsNotSent) as refused:
            door.provisioner.handle(parse_request({"vers": "0", "msisdn": msisdn}), 2.0)
        assert isinstance(refused.value.__cause__, StoreError)
        assert refused.value.msisdn == msisdn
    # No OTP is pending that no SMS carries, and the one that did reach the phone was not superseded.
    assert door.provisioner.pending_otps() == 1
    assert len(door.sms) == sent
    assert isinstance(_answer(door, old_otp, 3.0, otp_session=old_session), ConfigurationIssued)


def test_without_the_cookie_the_pending_otp_is_found_by_msisdn(door: Door) -> None:
    _ask_otp(door, MSISDN, 1.0)
    _, otp = _ask_otp(door, WIFI_MSISDN, 1.0)
    assert isinstance(_answer(door, otp, 2.0, msisdn=WIFI_MSISDN), ConfigurationIssued)
    # Used: the number has no pending OTP any more; the other number's is still there.
    used = _answer(door, otp, 2.0, msisdn=WIFI_MSISDN)
    assert isinstance(used, Refused)
    assert "no OTP is pending" in used.detail
    assert door.provisioner.pending_otps() == 1


def test_expired_otps_are_purged(door: Door) -> None:
    validity = door.provisioner.profile.otp_validity
    for number in range(10):
        door.provisioner.add_subscriber(f"+1555777{number:04d}")
        _ask_otp(door, f"+1555777{number:04d}", 1.0 + number)
    assert door.provisioner.pending_otps() == 10
    # Five of them expire (validity counted from each one's issue); the next OTP request throws them away.
    _, otp = _ask_otp(door, WIFI_MSISDN, 5.0 + validity + 0.5)
    assert door.provisioner.pending_otps() == 1 + 5
    expired = _answer(door, "000000", 6.0 + validity, msisdn="+15557770000")
    assert isinstance(expired, Refused)
    assert "no OTP is pending" in expired.detail
    assert isinstance(_answer(door, otp, 6.0 + validity, msisdn=WIFI_MSISDN), ConfigurationIssued)


# -- resets reach the clients that hold a token; a cellular session outranks a stale token -------------------


@pytest.mark.parametrize(("state", "version"), [(SubscriberState.RESET, 0), (SubscriberState.RESET_FORBID, -1)])
def test_a_client_holding_a_token_is_told_of_a_reset(door: Door, state: SubscriberState, version: int) -> None:
    issued = door.token_by_otp(WIFI_MSISDN, 10.0, IMSI=DEVICE_IMSI)
    door.provisioner.set_state(WIFI_MSISDN, state)
    request = parse_request({"vers": str(issued.version), "IMSI": DEVICE_IMSI, "token": issued.token.token})
    answer = door.provisioner.handle(request, 20.0)
    assert answer == VersionAnswered(version, 0)  # not a 511 that would cost an OTP to learn of the reset
    # Delivered, the reset takes the token with it.
    assert door.provisioner.token_info(issued.token.token) is None
    again = door.provisioner.handle(request, 21.0)
    assert isinstance(again, Refused)
    assert again.status == 511


@pytest.mark.parametrize("token", ["revoked", "unknown", "another-sims"])
def test_a_cellular_client_with_a_stale_token_is_served_by_its_cellular_identity(door: Door, token: str) -> None:
    issued = door.token_by_otp(MSISDN, 10.0, IMSI=OTHER_IMSI)
    if token == "revoked":
        door.provisioner.change_sim(MSISDN, IMSI)  # revokes the tokens; the number's SIM is IMSI
        presented = issued.token.token
    elif token == "unknown":
        presented = "f" * 32
    else:
        presented = issued.token.token  # issued to OTHER_IMSI, presented from IMSI's client
    opened = door.provisioner.handle(parse_request({}), 30.0, enriched_msisdn=MSISDN)
    assert isinstance(opened, CellularSessionOpened)
    answer = door.provisioner.handle(
        parse_request({"vers": str(issued.version), "IMSI": IMSI, "token": presented}),
        31.0,
        cellular_session=opened.session,
    )
    # Up to date: VERS only, as the cellular subscriber (not a 511 that sends it to the OTP path).
    assert answer == VersionAnswered(issued.version, door.provisioner.profile.validity)
    # Without the cellular session the same token is still refused.
    alone = door.provisioner.handle(parse_request({"vers": "1", "IMSI": IMSI, "token": presented}), 32.0)
    assert isinstance(alone, Refused)
    assert alone.status == 511


def test_the_network_identity_outranks_a_valid_token_of_another_number(door: Door) -> None:
    # A token earned for WIFI_MSISDN, presented on a cellular session the network opened for MSISDN: once the
    # client got WIFI_MSISDN's configuration, on a bearer that says it is MSISDN's device.
    issued = door.token_by_otp(WIFI_MSISDN, 10.0, IMSI=DEVICE_IMSI)
    opened = door.provisioner.handle(parse_request({}), 30.0, enriched_msisdn=MSISDN)
    assert isinstance(opened, CellularSessionOpened)
    answer = door.provisioner.handle(
        parse_request({"vers": "0", "token": issued.token.token}),  # vers 0: the whole document; no IMSI to tell
        31.0,
        cellular_session=opened.session,
    )
    assert isinstance(answer, ConfigurationIssued)
    assert answer.subscriber.msisdn == MSISDN


def test_a_cellular_session_does_not_excuse_a_foreign_imsi_beside_a_stale_token(door: Door) -> None:
    opened = door.provisioner.handle(parse_request({}), 30.0, enriched_msisdn=MSISDN)
    assert isinstance(opened, CellularSessionOpened)
    answer = door.provisioner.handle(
        parse_request({"vers": "1", "IMSI": OTHER_IMSI, "token": "f" * 32}), 31.0, cellular_session=opened.session
    )
    assert isinstance(answer, Refused)
    assert answer.status == 403


def test_a_cellular_subscriber_with_no_imsi_on_record_is_provisioned_when_it_names_its_imsi(door: Door) -> None:
    # rcsjta sends IMSI on every cellular request; a record holding none refused every one of them with 403.
    opened = door.provisioner.handle(parse_request({}), 30.0, enriched_msisdn=WIFI_MSISDN)
    assert isinstance(opened, CellularSessionOpened)
    answer = door.provisioner.handle(
        parse_request({"vers": "0", "IMSI": DEVICE_IMSI, "IMEI": "490154203237518"}), 31.0,
        cellular_session=opened.session,
    )
    assert isinstance(answer, ConfigurationIssued)
    assert answer.subscriber.msisdn == WIFI_MSISDN
    assert answer.token.imsi == DEVICE_IMSI  # bound to the SIM that asked, as on the OTP path


def test_a_reset_met_on_the_otp_path_is_served_by_the_full_document(door: Door) -> None:
    # A VERS 0 would make the client reset and ask again: a second OTP SMS for nothing.
    door.provisioner.set_state(WIFI_MSISDN, SubscriberState.RESET)
    issued = door.token_by_otp(WIFI_MSISDN, 10.0)
    assert issued.version == 1
    assert door.provisioner.subscriber(WIFI_MSISDN).state is SubscriberState.ACTIVE
    # RESET_FORBID persists: the OTP path gets -1 like any other.
    door.provisioner.set_state(WIFI_MSISDN, SubscriberState.RESET_FORBID)
    sent = door.provisioner.handle(parse_request({"vers": "0", "msisdn": WIFI_MSISDN}), 20.0)
    assert isinstance(sent, OtpSent)
    answer = door.provisioner.handle(parse_request({"OTP": door.otp()}), 20.0, otp_session=sent.session)
    assert answer == VersionAnswered(-1, 0)


# -- what goes into the document must be XML ------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["\x00", "\x01", "\x0b", "\ufffe", "\ud800"])
@pytest.mark.parametrize("name", ["title", "message"])
def test_terms_with_a_character_xml_does_not_allow_are_refused(bad: str, name: str) -> None:
    fields = {"title": "Hi", "message": "Terms"} | {name: f"a{bad}b"}
    with pytest.raises(ValueError, match=name):
        MsgTerms(**fields)


@pytest.mark.parametrize("name", ["carrier", "home_domain", "pcscf_address"])
def test_a_profile_with_a_character_xml_does_not_allow_is_refused(name: str) -> None:
    fields = {"carrier": "Example", "home_domain": "ims.example.net"} | {name: "x\x1by"}
    with pytest.raises(ValueError, match=name):
        RcsProfile(**fields)


def test_terms_with_any_xml_character_make_a_well_formed_document() -> None:
    text = "Tab\tline\nreturn\r \u00e9\u4e2d\U0001f600 <&>\"'"
    profile = RcsProfile("Example", "ims.example.net", terms=MsgTerms(text, text))
    subscriber = Subscriber(MSISDN, IMSI)
    grant = TokenGrant("t", MSISDN, 100.0, 60)
    document = build_document(ConfigurationIssued(1, 3600, grant, subscriber, profile))
    assert validate_document(document, token_issued=True, full=True) == []
