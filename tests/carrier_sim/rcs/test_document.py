"""The document builder, the validator's judgements, and parse_request's failure contract."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carrier_sim.rcs import (
    CellularSessionOpened,
    ConfigurationIssued,
    InvalidParameter,
    Provisioner,
    RcsProfile,
    VersionAnswered,
    build_document,
    parse_request,
    validate_document,
)


def _issued() -> ConfigurationIssued:
    provisioner = Provisioner(RcsProfile("X", "ims.x.net"), lambda *_: None, random.Random(1))
    provisioner.add_subscriber("+15550001111", "310310990001111")
    session = provisioner.handle(parse_request({}), 0.0, enriched_msisdn="15550001111")
    assert isinstance(session, CellularSessionOpened)
    outcome = provisioner.handle(parse_request({"vers": "0", "IMSI": "310310990001111"}), 0.0,
                                 cellular_session=session.session)
    assert isinstance(outcome, ConfigurationIssued)
    return outcome


def _parms(root: ET.Element, app_id: str, kind: str) -> dict[str, str]:
    """The parms of the ``kind`` characteristic inside the APPLICATION whose AppID is ``app_id``."""
    for application in root.findall("characteristic[@type='APPLICATION']"):
        if application.find(f"parm[@name='AppID'][@value='{app_id}']") is not None:
            found = application.find(f"characteristic[@type='{kind}']")
            assert found is not None, (app_id, kind)
            return {str(p.get("name")): str(p.get("value")) for p in found.findall("parm")}
    raise AssertionError(f"no APPLICATION {app_id}")


def test_parameter_names_and_places_are_rcc07s() -> None:
    # As RCC.07 annex A names them and rcsjta's ProvisioningParser looks for them (parseServices, parseIM,
    # parseAppAuthent under the IMS settings application).
    root = ET.fromstring(build_document(_issued()))
    services = _parms(root, "ap2002", "SERVICES")
    assert services["isAuth"] == "1"
    assert services["ftAuth"] == "1"
    assert "isAuthorized" not in services
    assert "FtAuth" not in services
    im = _parms(root, "ap2002", "IM")
    assert int(im["MaxSize1to1"]) > 0
    messaging = _parms(root, "ap2002", "MESSAGING")
    assert not any(name.lower() == "maxsize1to1" for name in messaging)
    appauth = _parms(root, "ap2001", "APPAUTH")
    assert appauth["UserName"] == "310310990001111@ims.x.net"
    assert appauth["Realm"] == "ims.x.net"
    assert appauth["UserPwd"]


def test_built_documents_validate() -> None:
    assert validate_document(build_document(_issued()), token_issued=True, full=True) == []
    for version in (5, 0, -1, -2, -3):
        assert validate_document(build_document(VersionAnswered(version, 0))) == []


@pytest.mark.parametrize(
    ("xml", "fragment"),
    [
        (b"<wap-provisioningdoc>", "well-formed"),
        (b"<doc/>", "root element"),
        (b"<wap-provisioningdoc/>", "exactly one VERS"),
        (
            b'<wap-provisioningdoc><characteristic type="VERS"><parm name="version" value="x"/>'
            b'<parm name="validity" value="0"/></characteristic></wap-provisioningdoc>',
            "not an integer",
        ),
        (
            b'<wap-provisioningdoc><characteristic type="VERS"><parm name="version" value="-7"/>'
            b'<parm name="validity" value="0"/></characteristic></wap-provisioningdoc>',
            "neither positive",
        ),
        (
            b'<wap-provisioningdoc><characteristic type="VERS"><parm name="version" value="1"/>'
            b'<parm name="validity" value="-1"/></characteristic></wap-provisioningdoc>',
            "validity",
        ),
        (
            b'<wap-provisioningdoc><characteristic type="VERS"><parm name="version" value="1"/>'
            b'<parm name="validity" value="1"/></characteristic><characteristic type="TOKEN">'
            b'<parm name="validity" value="1"/></characteristic></wap-provisioningdoc>',
            "TOKEN has no token",
        ),
        (
            b'<wap-provisioningdoc><parm name="a" value="b"/><characteristic type="VERS">'
            b'<parm name="version" value="1"/><parm name="validity" value="1"/></characteristic>'
            b"</wap-provisioningdoc>",
            "outside a characteristic",
        ),
        (
            b'<wap-provisioningdoc><characteristic type="VERS"><parm name="version" value="1"/>'
            b'<parm name="validity" value="1"/></characteristic><characteristic type="MSG">'
            b'<parm name="title" value="t"/></characteristic></wap-provisioningdoc>',
            "MSG lacks message",
        ),
    ],
)
def test_validator_reports(xml: bytes, fragment: str) -> None:
    errors = validate_document(xml)
    assert any(fragment in error for error in errors), errors


def test_validator_requirements_for_full_and_token() -> None:
    vers_only = build_document(VersionAnswered(3, 60))
    errors = validate_document(vers_only, token_issued=True, full=True)
    assert any("no TOKEN" in e for e in errors)
    assert any("no APPLICATION" in e for e in errors)


_NAMES = st.sampled_from(
    ["vers", "IMSI", "IMEI", "msisdn", "token", "OTP", "SMS_port", "rcs_version", "rcs_profile",
     "provisioning_version", "terminal_vendor", "default_sms_app", "other"]
)  # fmt: skip


@given(st.dictionaries(_NAMES, st.text(max_size=80)))
def test_parse_request_fails_only_with_invalid_parameter(params: dict[str, str]) -> None:
    try:
        request = parse_request(params)
    except InvalidParameter as error:
        assert error.parameter in params or error.parameter == "vers"
    else:
        assert request.vers is None or request.vers >= -4
        assert 0 <= request.sms_port <= 0xFFFF


def test_empty_values_are_absent_and_a_bare_plus_is_a_space() -> None:
    request = parse_request({"vers": "0", "IMSI": "", "IMEI": "", "msisdn": " 15550001234", "token": "",
                             "SMS_port": "0"})
    assert (request.imsi, request.imei, request.token) == (None, None, None)
    assert request.msisdn == "+15550001234"
    assert request.sms_port == 0


def test_vers_is_needed_except_by_the_otp_answer_and_the_bare_request() -> None:
    assert parse_request({"OTP": "123456"}).vers is None
    assert parse_request({}).bare
    assert not parse_request({"OTP": "123456"}).bare
    with pytest.raises(InvalidParameter, match="vers"):
        parse_request({"IMSI": "310310990001111"})


@pytest.mark.parametrize("version", ["1_0", " 1 ", "\uff11", "+1"])
def test_the_validator_takes_only_plain_decimal_integers(version: str) -> None:
    xml = (f'<wap-provisioningdoc version="1.1"><characteristic type="VERS"><parm name="version" value="{version}"/>'
           '<parm name="validity" value="0"/></characteristic></wap-provisioningdoc>').encode()
    assert any("not an integer" in error for error in validate_document(xml))
