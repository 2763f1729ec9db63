"""A carrier's doors besides its SMSC: RCS autoconfiguration, the email-to-SMS gateway and the CAMARA APIs.

:func:`start_doors` opens every door the scenario declares for the carriers already running (their SMSCs
listening) and returns them as :class:`Door` s, each knowing where it listens and how to stop.

MTs a door originates (an RCS OTP, a mail turned into SMS) belong to the carrier's SMSC. The SMSC has no public
call to originate an MT to a subscriber -- its MTs come from bound ESMEs -- so :class:`MtHandoff` does what the
SMSC does once it has decided to deliver an MT: it builds a :class:`~carrier_sim.smsc.store.StoredMessage` and
calls the SMSC's ``mt_listener`` (the hook through which the runner's phones receive MTs), if one is set, and
counts it. With ``carrier-sim carriers`` there are no phones, so the count is all that remains of it.

Subscribers: a carrier's numbering is its subscriber base. The RCS and CAMARA doors hold per-number records, so
they know the first :data:`MAX_RECORDS` numbers of each carrier (numbering can declare millions; records for
all of them would take minutes and gigabytes to build). The SMTP door asks the SMSC's registry, which holds
every number of the ranges.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from carrier_sim.camara import SubscriberRecords, camara_app
from carrier_sim.mail import GatewayConfig, MailGateway
from carrier_sim.rcs import Provisioner, RcsProfile, rcs_app
from carrier_sim.runner.carriers import RunningCarrier
from carrier_sim.scenario.model import Carrier, Scenario
from carrier_sim.smpp.receipt import MessageState
from carrier_sim.smpp.segmentation import Segment
from carrier_sim.smsc.store import StoredMessage
from carrier_sim.smsc.subscribers import Condition

__all__ = ["MAX_RECORDS", "Door", "MtHandoff", "numbers_of", "start_doors"]

#: How many numbers of a carrier the RCS and CAMARA doors hold records for (the first ones of its numbering).
MAX_RECORDS: Final = 100_000
#: Ids of door-originated messages start far above the SMSC's own, so a listener never sees one id twice.
_FIRST_ID: Final = 1 << 48
#: SMPP esm_class bit: the short_message starts with a user data header.
_UDHI: Final = 0x40
#: How long a handed-off MT is valid, as an SMSC's default validity period.
_VALIDITY: Final = 86400.0


@dataclass
class Door:
    """One listening door of one carrier: ``name`` is smpp, smpp-tls, rcs, smtp or camara."""

    name: str
    carrier: str
    host: str
    port: int
    _stop: Callable[[], Awaitable[None]] = field(repr=False)

    async def stop(self) -> None:
        """Stop listening and close the door's open connections."""
        await self._stop()


@dataclass
class MtHandoff:
    """Hands the MTs a door originates to one carrier's SMSC, as a stored message to its ``mt_listener``."""

    running: RunningCarrier
    clock: Callable[[], float] = time.time
    #: MTs handed off so far.
    sent: int = 0
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(_FIRST_ID), repr=False)

    def send(self, msisdn: str, data: bytes, *, source: str, data_coding: int, esm_class: int) -> StoredMessage:
        """One MT part to ``msisdn`` (digits, '+' allowed); returns the message as the listener saw it."""
        now = self.clock()
        message = StoredMessage(
            message_id=next(self._ids),
            system_id="",
            service_type="",
            source_addr=source,
            destination_addr=msisdn.lstrip("+"),
            data=data,
            data_coding=data_coding,
            esm_class=esm_class,
            registered_delivery=0,
            submitted_at=now,
            deliver_at=now,
            expire_at=now + _VALIDITY,
            state=MessageState.ENROUTE,
        )
        listener = self.running.smsc.mt_listener
        if listener is not None:
            listener(message, now)
        self.sent += 1
        return message

    def rcs_sms(self, msisdn: str, payload: bytes, port: int) -> None:
        """The RCS provisioner's ``send_sms``: one binary, port-addressed part (UDH included)."""
        del port  # the port is inside the payload's UDH already
        self.send(msisdn, payload, source=self.running.carrier.name[:11], data_coding=0x04, esm_class=_UDHI)

    def mail_mt(self, msisdn: str, segments: list[Segment]) -> None:
        """The mail gateway's ``send_mt``: every segment of one mail to one subscriber."""
        for segment in segments:
            data = segment.message_payload if segment.message_payload is not None else segment.short_message
            esm_class = _UDHI if segment.esm_class_udhi else 0
            self.send(msisdn, data, source="mail", data_coding=segment.data_coding, esm_class=esm_class)


def numbers_of(carrier: Carrier, limit: int = MAX_RECORDS) -> Iterator[int]:
    """The carrier's numbers in declaration order, at most ``limit`` of them."""
    every = itertools.chain.from_iterable(range(r.first, r.last + 1) for r in carrier.ranges)
    return itertools.islice(every, limit)


def _in_numbering(carrier: Carrier, msisdn: str) -> bool:
    digits = msisdn.lstrip("+")
    if not digits.isdecimal():
        return False
    number = int(digits)
    return any(r.first <= number <= r.last and len(str(r.first)) == len(digits) for r in carrier.ranges)


class _WallClock:
    """The RCS app's clock: seconds since the epoch."""

    def now(self) -> float:
        """The current time in seconds."""
        return time.time()


async def _serve(app: web.Application, host: str, port: int) -> tuple[str, int, Callable[[], Awaitable[None]]]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    return str(bound[0]), int(bound[1]), runner.cleanup


def _ims_domain(carrier: Carrier) -> str:
    # 3GPP TS 23.003 section 13.2: the home network domain derived from MCC and MNC.
    return f"ims.mnc{carrier.mnc.zfill(3)}.mcc{carrier.mcc}.3gppnetwork.org"


async def _start_one(running: RunningCarrier, seed: int, started: list[Door]) -> None:
    carrier = running.carrier
    handoff = MtHandoff(running)
    doors = carrier.doors
    if doors.rcs is not None:
        provisioner = Provisioner(RcsProfile(carrier.name, _ims_domain(carrier)), handoff.rcs_sms, random.Random(seed))
        for number in numbers_of(carrier):
            provisioner.add_subscriber(f"+{number}")
        host, port, stop = await _serve(rcs_app(provisioner, _WallClock()), doors.rcs.host, doors.rcs.port)
        started.append(Door("rcs", carrier.name, host, port, stop))
    if doors.smtp is not None:
        registry = running.smsc.subscribers

        def known(msisdn: str) -> bool:
            return _in_numbering(carrier, msisdn) and registry.condition(msisdn) is not Condition.UNKNOWN

        domain = doors.smtp.domain
        gateway = MailGateway(
            GatewayConfig(domains=(domain,), hostname=f"mail.{domain}"), send_mt=handoff.mail_mt, known_subscriber=known
        )
        host, port = await gateway.start(doors.smtp.host, doors.smtp.port)
        started.append(Door("smtp", carrier.name, host, port, gateway.stop))
    if doors.camara is not None:
        records = SubscriberRecords()
        now = datetime.now(UTC)
        for number in numbers_of(carrier):
            records.activate(f"+{number}", now)
        app = camara_app(records, lambda: datetime.now(UTC), None)
        host, port, stop = await _serve(app, doors.camara.host, doors.camara.port)
        started.append(Door("camara", carrier.name, host, port, stop))


async def start_doors(running_carriers: list[RunningCarrier], scenario: Scenario) -> list[Door]:
    """Open every RCS, SMTP and CAMARA door the scenario declares for the running carriers.

    If one fails to start (its port is taken), the doors already open are stopped and the error propagates.
    """
    started: list[Door] = []
    try:
        for index, running in enumerate(running_carriers):
            await _start_one(running, scenario.seed * 1000 + index, started)
    except BaseException:
        for door in reversed(started):
            await door.stop()
        raise
    return started
