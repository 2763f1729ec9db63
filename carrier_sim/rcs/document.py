"""The ``wap-provisioningdoc`` an RCS configuration server answers with, and a structural check of it.

Theory: the document (OMA Client Provisioning syntax as profiled by RCC.07 annex A / RCC.14) is a tree of
``characteristic type="..."`` elements holding ``parm name="..." value="..."`` leaves. Top-level
characteristics used here:

* ``VERS``: ``version`` (the configuration version or a special value 0/-1/-2/-3) and ``validity`` (s);
  present in every document, and the only one in a VERS-only answer.
* ``TOKEN``: ``token`` and ``validity`` (s); present whenever the server issues a token.
* ``MSG``: ``title``, ``message``, ``Accept_btn``, ``Reject_btn``: terms shown to the user, when configured.
* ``APPLICATION`` (IMS settings, AppRef ``IMS-Settings``, with ``APPAUTH``) and ``APPLICATION`` (RCS
  settings, with ``SERVICES``, ``MESSAGING`` and ``IM``): the parameters a client needs to register and
  message.

:func:`validate_document` is the judge used by tests and by the conformance harness on any server's
answer; it returns readable errors rather than raising, so one run can report all of them.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from typing import Final

from carrier_sim.rcs.provisioning import ConfigurationIssued, VersionAnswered

__all__ = ["CONTENT_TYPE", "SPECIAL_VERSIONS", "build_document", "validate_document"]

#: The media type RCS configuration servers answer with.
CONTENT_TYPE: Final = "text/vnd.wap.connectivity-xml"
#: VERS version values below 1 and their meaning (RCC.07 table "version and validity").
SPECIAL_VERSIONS: Final[dict[int, str]] = {0: "reset", -1: "reset and forbid", -2: "disable", -3: "dormant"}

_MSG_PARMS: Final = ("title", "message", "Accept_btn", "Reject_btn")
_INTEGER: Final = re.compile(r"-?[0-9]{1,18}")


def _characteristic(parent: ET.Element, kind: str, **parms: str) -> ET.Element:
    element = ET.SubElement(parent, "characteristic", type=kind)
    for name, value in parms.items():
        ET.SubElement(element, "parm", name=name, value=value)
    return element


def _parm(parent: ET.Element, name: str, value: str) -> None:
    ET.SubElement(parent, "parm", name=name, value=value)


def build_document(answer: ConfigurationIssued | VersionAnswered) -> bytes:
    """Serialise an answer of :class:`~carrier_sim.rcs.provisioning.Provisioner` as UTF-8 XML."""
    root = ET.Element("wap-provisioningdoc", version="1.1")
    _characteristic(root, "VERS", version=str(answer.version), validity=str(answer.validity))
    if isinstance(answer, ConfigurationIssued):
        profile, subscriber = answer.profile, answer.subscriber
        _characteristic(root, "TOKEN", token=answer.token.token, validity=str(answer.token.validity))
        if profile.terms is not None:
            _characteristic(
                root,
                "MSG",
                title=profile.terms.title,
                message=profile.terms.message,
                Accept_btn=str(int(profile.terms.accept_button)),
                Reject_btn=str(int(profile.terms.reject_button)),
            )
        domain = profile.home_domain
        private_identity = f"{subscriber.imsi or subscriber.msisdn.lstrip('+')}@{domain}"

        ims = _characteristic(root, "APPLICATION", AppID="ap2001", Name="IMS Settings", AppRef="IMS-Settings")
        _characteristic(ims, "ConRefs", ConRef="0")
        for name, value in (("Timer_T1", "2000"), ("Timer_T2", "16000"), ("Timer_T4", "17000")):
            _parm(ims, name, value)
        _parm(ims, "Private_User_Identity", private_identity)
        _characteristic(ims, "Public_User_Identity_List", Public_User_Identity=f"sip:{subscriber.msisdn}@{domain}")
        _parm(ims, "Home_network_domain_name", domain)
        if profile.pcscf_address:
            _characteristic(ims, "LBO_P-CSCF_Address", Address=profile.pcscf_address, AddressType="FQDN")
        # RCC.07 APPAUTH: the credentials a client registers with when it cannot use the SIM (Wi-Fi, OTP).
        # The password is emulated, derived from the token so that each new configuration carries a new one.
        _characteristic(
            ims,
            "APPAUTH",
            AuthType="Digest",
            Realm=domain,
            UserName=private_identity,
            UserPwd=hashlib.sha256(answer.token.token.encode()).hexdigest()[:16],
        )

        rcs = _characteristic(root, "APPLICATION", AppID="ap2002", Name="RCS settings", AppRef="RCSe-Settings")
        # Parameter names as RCC.07 spells them (isAuth is image share, ftAuth file transfer); a client that
        # compares them case-sensitively (Samsung) ignores any other spelling.
        _characteristic(
            rcs,
            "SERVICES",
            ChatAuth="1",
            ftAuth="1",
            standaloneMsgAuth="1",
            presencePrfl="0",
            isAuth="1",
        )
        _characteristic(rcs, "MESSAGING", chatRevokeTimer="0")
        # The maximum size of a 1-to-1 chat message lives in IM (rcsjta's parseIM reads MaxSize1to1 there).
        _characteristic(rcs, "IM", MaxSize1to1="8192")
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _integer(text: str | None) -> int | None:
    # A decimal integer as a client parses it: int() alone would also take '1_0', ' 7 ' or full-width digits.
    if text is None or not _INTEGER.fullmatch(text):
        return None
    return int(text)


def _parms(element: ET.Element) -> dict[str, str | None]:
    return {str(parm.get("name")): parm.get("value") for parm in element.findall("parm")}


def validate_document(xml_bytes: bytes, *, token_issued: bool = False, full: bool = False) -> list[str]:
    """Check a configuration document's structure; returns the errors found (empty when valid).

    Always checked: well-formed XML; root ``wap-provisioningdoc``; every ``characteristic`` has a ``type``
    and every ``parm`` a ``name`` and a ``value`` and sits in a characteristic; exactly one top-level VERS
    with an integer ``version`` (positive or a special value 0..-3) and a non-negative integer ``validity``;
    at most one TOKEN, whose ``token`` is non-empty and ``validity`` a non-negative integer; a MSG has its
    four parms with buttons 0 or 1; an APPLICATION has ``AppID`` and ``Name``. With ``token_issued`` a
    TOKEN is required; with ``full`` a positive version and at least one APPLICATION are required.
    """
    try:
        root = ET.fromstring(xml_bytes)
    except ET.ParseError as error:
        return [f"not well-formed XML: {error}"]
    errors: list[str] = []
    if root.tag != "wap-provisioningdoc":
        errors.append(f"root element is {root.tag!r}, not 'wap-provisioningdoc'")
    for element in root.iter():
        if element.tag == "characteristic" and not element.get("type"):
            errors.append("a characteristic has no type")
        elif element.tag == "parm":
            if not element.get("name") or element.get("value") is None:
                errors.append(f"parm {element.get('name')!r} lacks a name or a value")
        elif element.tag not in ("characteristic", "parm", "wap-provisioningdoc"):
            errors.append(f"unexpected element {element.tag!r}")
    for parent in root.iter():
        if parent.tag != "characteristic":
            errors.extend(f"parm {p.get('name')!r} outside a characteristic" for p in parent.findall("parm"))

    top = root.findall("characteristic")
    vers = [c for c in top if c.get("type") == "VERS"]
    if len(vers) != 1:
        errors.append(f"expected exactly one VERS characteristic, found {len(vers)}")
    version: int | None = None
    if vers:
        parms = _parms(vers[0])
        version = _integer(parms.get("version"))
        validity = _integer(parms.get("validity"))
        if version is None:
            errors.append(f"VERS version {parms.get('version')!r} is not an integer")
        elif version < 1 and version not in SPECIAL_VERSIONS:
            errors.append(f"VERS version {version} is neither positive nor one of {sorted(SPECIAL_VERSIONS)}")
        if validity is None or validity < 0:
            errors.append(f"VERS validity {parms.get('validity')!r} is not a non-negative integer")

    tokens = [c for c in top if c.get("type") == "TOKEN"]
    if len(tokens) > 1:
        errors.append(f"more than one TOKEN characteristic ({len(tokens)})")
    if token_issued and not tokens:
        errors.append("a token was issued but the document has no TOKEN characteristic")
    for token in tokens:
        parms = _parms(token)
        if not parms.get("token"):
            errors.append("TOKEN has no token value")
        token_validity = _integer(parms.get("validity"))
        if token_validity is None or token_validity < 0:
            errors.append(f"TOKEN validity {parms.get('validity')!r} is not a non-negative integer")

    for msg in (c for c in top if c.get("type") == "MSG"):
        parms = _parms(msg)
        errors.extend(f"MSG lacks {name}" for name in _MSG_PARMS if parms.get(name) is None)
        errors.extend(
            f"MSG {name} is {parms[name]!r}, not 0 or 1"
            for name in ("Accept_btn", "Reject_btn")
            if parms.get(name) is not None and parms[name] not in ("0", "1")
        )

    applications = [c for c in top if c.get("type") == "APPLICATION"]
    for application in applications:
        parms = _parms(application)
        errors.extend(f"APPLICATION lacks {name}" for name in ("AppID", "Name") if not parms.get(name))
    if full:
        if version is not None and version < 1:
            errors.append(f"a full document needs a positive version, not {version}")
        if not applications:
            errors.append("a full document has no APPLICATION characteristic")
    return errors
