"""RCS autoconfiguration servers (GSMA RCC.14 / RCC.07): pure provisioning logic, document, aiohttp app."""

from __future__ import annotations

from carrier_sim.rcs.app import CELLULAR_SESSION_COOKIE, ENRICHMENT_HEADER, OTP_SESSION_COOKIE, Clock, rcs_app
from carrier_sim.rcs.document import CONTENT_TYPE, build_document, validate_document
from carrier_sim.rcs.provisioning import (
    DEFAULT_SMS_PORT,
    CellularSessionOpened,
    ConfigRequest,
    ConfigurationIssued,
    InvalidParameter,
    MsgTerms,
    OtpSent,
    Outcome,
    Provisioner,
    RcsProfile,
    Refused,
    SendSms,
    Subscriber,
    SubscriberState,
    TokenGrant,
    VersionAnswered,
    otp_sms,
    parse_request,
    reconfiguration_sms,
)

__all__ = [
    "CELLULAR_SESSION_COOKIE",
    "CONTENT_TYPE",
    "DEFAULT_SMS_PORT",
    "ENRICHMENT_HEADER",
    "OTP_SESSION_COOKIE",
    "CellularSessionOpened",
    "Clock",
    "ConfigRequest",
    "ConfigurationIssued",
    "InvalidParameter",
    "MsgTerms",
    "OtpSent",
    "Outcome",
    "Provisioner",
    "RcsProfile",
    "Refused",
    "SendSms",
    "Subscriber",
    "SubscriberState",
    "TokenGrant",
    "VersionAnswered",
    "build_document",
    "otp_sms",
    "parse_request",
    "rcs_app",
    "reconfiguration_sms",
    "validate_document",
]
