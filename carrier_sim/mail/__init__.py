"""Email-to-SMS gateways of the emulated carriers: pure translation (:mod:`.translate`) and its SMTP edge
(:mod:`.gateway`). See docs/email-to-sms.md."""

from __future__ import annotations

from carrier_sim.mail.gateway import MailGateway
from carrier_sim.mail.translate import GatewayConfig, MailRefused, MoNotForMail, Overflow, SmsText, SmtpReply

__all__ = ["GatewayConfig", "MailGateway", "MailRefused", "MoNotForMail", "Overflow", "SmsText", "SmtpReply"]
