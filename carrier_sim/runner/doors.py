"""A carrier's doors besides its SMSC: RCS autoconfiguration, the email-to-SMS gateway and the CAMARA APIs.

:func:`start_doors` opens every door the scenario declares for the carriers already running (their SMSCs
listening) and returns them as :class:`Door` s, each knowing where it listens and how to stop.

MTs a door originates (an RCS OTP, a mail turned into SMS) go through the carrier's SMSC: :class:`MtHandoff`
calls :meth:`~carrier_sim.smsc.centre.Smsc.originate_mt`, which stores the message and delivers it as it
delivers a submitted MT -- the subscriber's condition decides (absent: retried, barred or unknown: not
delivered), the SMSC's counters count it, and a delivered one reaches the phone through the SMSC's
``mt_listener``. With ``carrier-sim carriers`` there are no phones: the SMSC stores and counts it.

Subscribers: a carrier's numbering is its subscriber base. The RCS and CAMARA doors hold per-number records, so
they know the first :data:`MAX_RECORDS` numbers of each carrier (numbering can declare millions; records for
all of them would take minutes and gigabytes to build). The RCS door also knows each record's IMSI -- the
SIM the scenario's phone with that number holds first (:class:`~carrier_sim.population.identities.NumberingPlan`),
as the HSS would -- so a phone's cellular request is recognised, and bars the numbers the SMSC's registry holds
as barred. The SMTP door asks the SMSC's registry, which holds every number of the ranges.
:func:`subscriber_records` lists those records by the same code (``carrier-sim carriers --subscribers``).

Mail the SMTP door originates (SMS to mail, failure notices) leaves through a :class:`MailRelay`: real SMTP to
the exchanger registered for the recipient's domain (an in-process stand-in for MX records); mail to a domain
without one is counted as undeliverable and dropped, as ``carrier-sim carriers`` has nowhere to send it.

:func:`services_of` gives what a carrier's doors hold (the RCS provisioner, the mail gateway and relay) to the
in-process parts that play the carrier's own network for the phones -- the SMSC routing a phone's MO to the mail
gateway, for instance, is the flow calling :meth:`~carrier_sim.mail.MailGateway.deliver_mo`.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Final

import aiosmtplib
import numpy as np
from aiohttp import web

from carrier_sim.camara import Faults, SubscriberRecords, camara_app
from carrier_sim.camara.access import Grant
from carrier_sim.mail import GatewayConfig, MailGateway
from carrier_sim.net.http_errors import app_runner
from carrier_sim.population.identities import NumberingPlan
from carrier_sim.rcs import Provisioner, RcsProfile, rcs_app
from carrier_sim.runner.carriers import RunningCarrier
from carrier_sim.scenario.model import Carrier, Scenario
from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.segmentation import Segment
from carrier_sim.smsc.centre import Smsc
from carrier_sim.smsc.store import StoredMessage, StoreError
from carrier_sim.smsc.subscribers import Condition

__all__ = [
    "MAX_RECORDS",
    "CarrierServices",
    "Door",
    "MailRelay",
    "MtHandoff",
    "SubscriberRecord",
    "numbers_of",
    "services_of",
    "start_doors",
    "subscriber_records",
]

#: How many numbers of a carrier the RCS and CAMARA doors hold records for (the first ones of its numbering).
MAX_RECORDS: Final = 100_000
#: How long ago the CAMARA door's subscribers got their current SIM when the door opens.
SUBSCRIBED_FOR: Final = timedelta(days=365)
#: SMPP esm_class bit: the short_message starts with a user data header.
_UDHI: Final = 0x40
#: How long a handed-off MT is valid, as an SMSC's default validity period.
_VALIDITY: Final = 86400.0
#: The SIM generation the doors know a phone by: its first (a SIM swap later gives it generation 1).
_FIRST_SIM: Final = 0


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
    """Hands the MTs a door originates to one carrier's SMSC (:meth:`~carrier_sim.smsc.centre.Smsc.originate_mt`):
    stored and delivered like any MT, so the subscriber's condition applies and the phones get it through the
    SMSC's ``mt_listener``."""

    running: RunningCarrier
    clock: Callable[[], float] = time.time
    #: MTs handed off so far.
    sent: int = 0

    def send(self, msisdn: str, data: bytes, *, source: str, data_coding: int, esm_class: int) -> StoredMessage:
        """One MT part to ``msisdn`` (digits, '+' allowed); returns the stored message (its state says whether it
        was delivered)."""
        message = self.running.smsc.originate_mt(source, msisdn, data, self.clock(), data_coding=data_coding,
                                                 esm_class=esm_class, validity=_VALIDITY)
        self.running.server.service()  # arm the SMSC's timer for retries of an absent subscriber
        self.sent += 1
        return message

    def rcs_sms(self, msisdn: str, segment: Segment) -> None:
        """The RCS provisioner's ``send_sms``: one part, its UDH (port addressing) included when it has one."""
        self.send(msisdn, segment.short_message, source=self.running.carrier.name[:11],
                  data_coding=segment.data_coding, esm_class=_UDHI if segment.esm_class_udhi else 0)

    def mail_mt(self, msisdn: str, segments: list[Segment], *, source: str = "mail") -> None:
        """The mail gateway's ``send_mt``: every segment of one mail to one subscriber, or none of them.

        ``source`` is the MT's originating address: ``"mail"``, or the gateway's short code when it has one, so
        that the phone's reply goes to the short code and the gateway can route it back to the mail's sender.

        Raises :class:`~carrier_sim.smsc.store.StoreError` (ESME_RMSGQFUL) before storing anything when the
        store has no room for all of them: the gateway answers 451 and the client retries, so a segment stored
        before the store filled up would reach the phone twice (and the first copy never whole)."""
        store = self.running.smsc.store
        free = store.capacity - store.pending_count
        if free < len(segments):
            # Each originate_mt adds at most one pending message and nothing runs in between, so room for all
            # now is room for all when each is stored.
            raise StoreError(CommandStatus.ESME_RMSGQFUL,
                             f"message store has room for {max(free, 0)} of {len(segments)} segment(s)")
        for segment in segments:
            data = segment.message_payload if segment.message_payload is not None else segment.short_message
            esm_class = _UDHI if segment.esm_class_udhi else 0
            self.send(msisdn, data, source=source, data_coding=segment.data_coding, esm_class=esm_class)


class MailRelay:
    """Sends the mail a carrier's gateway originates over SMTP to the exchanger of each recipient's domain.

    ``exchangers`` maps a domain (lower case) to the (host, port) of its SMTP server, as MX records would; a
    recipient whose domain has none is counted in ``undeliverable`` and dropped. Connections are kept open and
    reused, at most ``connections`` per exchanger: a fixed pool, never a connection per mail.
    """

    def __init__(self, hostname: str, *, connections: int = 4, timeout: float = 30.0) -> None:
        self.hostname = hostname
        self.exchangers: dict[str, tuple[str, int]] = {}
        #: Mails handed to an exchanger, and recipients dropped for want of one.
        self.sent = 0
        self.undeliverable = 0
        self._connections = connections
        self._timeout = timeout
        self._idle: dict[tuple[str, int], list[aiosmtplib.SMTP]] = {}
        self._slots: dict[tuple[str, int], asyncio.Semaphore] = {}

    async def send(self, message: EmailMessage, mail_from: str | None = None) -> None:
        """Deliver ``message`` to the exchangers of its To/Cc recipients; raises aiosmtplib's errors.

        ``mail_from`` is the envelope sender (``MAIL FROM``): ``""`` is the null reverse-path a failure notice
        must have (RFC 5321 section 6.1); None takes it from the message's Sender or From header."""
        by_exchanger: dict[tuple[str, int], list[str]] = {}
        for _, address in getaddresses([*message.get_all("To", []), *message.get_all("Cc", [])]):
            exchanger = self.exchangers.get(address.rpartition("@")[2].lower())
            if exchanger is None:
                self.undeliverable += 1
            else:
                by_exchanger.setdefault(exchanger, []).append(address)
        for exchanger, recipients in by_exchanger.items():
            await self._send_to(exchanger, message, recipients, mail_from)

    async def _send_to(self, exchanger: tuple[str, int], message: EmailMessage, recipients: list[str],
                       mail_from: str | None) -> None:
        slots = self._slots.setdefault(exchanger, asyncio.Semaphore(self._connections))
        async with slots:
            idle = self._idle.setdefault(exchanger, [])
            client = idle.pop() if idle else None
            if client is None or not client.is_connected:
                client = aiosmtplib.SMTP(hostname=exchanger[0], port=exchanger[1], local_hostname=self.hostname,
                                         start_tls=False, timeout=self._timeout)
                await client.connect()
            try:
                await client.send_message(message, sender=mail_from, recipients=recipients)
            except BaseException:
                client.close()
                raise
            idle.append(client)
            self.sent += 1

    def close(self) -> None:
        """Drop every open connection."""
        for idle in self._idle.values():
            for client in idle:
                client.close()
        self._idle.clear()


@dataclass
class CarrierServices:
    """What one carrier's doors hold, for the in-process parts that play the carrier's network to its phones."""

    handoff: MtHandoff
    provisioner: Provisioner | None = None
    mail_gateway: MailGateway | None = None
    mail_relay: MailRelay | None = None
    #: The CAMARA door's subscriber registry (SIM swaps, port-outs, recycling happen here).
    camara: SubscriberRecords | None = None


_SERVICES: weakref.WeakKeyDictionary[Smsc, CarrierServices] = weakref.WeakKeyDictionary()


def services_of(running: RunningCarrier) -> CarrierServices | None:
    """The services of ``running``'s doors, None before :func:`start_doors` opened them."""
    return _SERVICES.get(running.smsc)


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


@dataclass(frozen=True, slots=True)
class _AppClock:
    """The RCS app's clock: the run's (seconds since the epoch by default)."""

    clock: Callable[[], float]

    def now(self) -> float:
        """The current time in seconds."""
        return self.clock()


async def _serve(app: web.Application, host: str, port: int) -> tuple[str, int, Callable[[], Awaitable[None]]]:
    runner = app_runner(app, access_log=None)  # malformed HTTP: one log line, no traceback
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


@dataclass(frozen=True, slots=True)
class SubscriberRecord:
    """One number a carrier's RCS and CAMARA doors hold a record for.

    ``imsi`` is the IMSI the RCS door recognises the number by (None: the number belongs to no phone of the
    scenario, or the carrier has no RCS door), ``iccid`` that SIM's serial when asked for, ``condition`` the
    SMSC registry's (the RCS door bars the barred ones).
    """

    carrier: str
    msisdn: str
    imsi: str | None
    iccid: str | None
    condition: Condition


def _records_of(running: RunningCarrier, plan: NumberingPlan | None, position: int, *,
                iccid: bool = False) -> Iterator[SubscriberRecord]:
    # The one derivation of a carrier's records: the RCS door is filled from it and `carrier-sim carriers
    # --subscribers` lists it, so what a user reads is what the door recognises.
    numbers = np.fromiter(numbers_of(running.carrier), dtype=np.int64)
    indices = plan.index_of_msisdn(numbers) if plan is not None else np.full(len(numbers), -1, dtype=np.int64)
    registry = running.smsc.subscribers
    name = running.carrier.name
    for number, index in zip(numbers.tolist(), indices.tolist(), strict=True):
        # Numbers past the carrier's phone quota belong to no phone of the scenario: no SIM, so only non-cellular
        # access (msisdn and OTP) reaches their record.
        imsi = serial = None
        if plan is not None and index >= 0:
            imsi = plan.imsi_of(index, _FIRST_SIM, position)
            # ICCIDs only on request: the door has no use for them and 100,000 of them add to start-up time.
            serial = plan.iccid_of(index, _FIRST_SIM, position) if iccid else None
        yield SubscriberRecord(name, f"+{number}", imsi, serial, registry.condition(str(number)))


def _add_rcs_subscribers(provisioner: Provisioner, running: RunningCarrier, plan: NumberingPlan | None,
                         position: int) -> None:
    for record in _records_of(running, plan, position):
        provisioner.add_subscriber(record.msisdn, record.imsi)
        if record.condition is Condition.BARRED:
            provisioner.set_barred(record.msisdn)


async def _start_one(running: RunningCarrier, position: int, seed: int, plan: NumberingPlan | None,
                     clock: Callable[[], float], started: list[Door]) -> None:
    carrier = running.carrier
    handoff = MtHandoff(running, clock)
    services = CarrierServices(handoff)
    doors = carrier.doors
    if doors.rcs is not None:
        provisioner = Provisioner(RcsProfile(carrier.name, _ims_domain(carrier)), handoff.rcs_sms, random.Random(seed))
        _add_rcs_subscribers(provisioner, running, plan, position)
        host, port, stop = await _serve(rcs_app(provisioner, _AppClock(clock)), doors.rcs.host, doors.rcs.port)
        started.append(Door("rcs", carrier.name, host, port, stop))
        services.provisioner = provisioner
    if doors.smtp is not None:
        registry = running.smsc.subscribers

        def known(msisdn: str) -> bool:
            return _in_numbering(carrier, msisdn) and registry.condition(msisdn) is not Condition.UNKNOWN

        domain = doors.smtp.domain
        relay = MailRelay(f"mail.{domain}")
        config = GatewayConfig(domains=(domain,), hostname=f"mail.{domain}", short_code=doors.smtp.short_code,
                               max_recipients=doors.smtp.max_recipients)
        gateway = MailGateway(
            config,
            send_mt=functools.partial(handoff.mail_mt, source=config.short_code or "mail"),
            known_subscriber=known,
            send_mail=relay.send,
        )
        host, port = await gateway.start(doors.smtp.host, doors.smtp.port)

        async def stop_mail() -> None:
            await gateway.stop()
            relay.close()

        started.append(Door("smtp", carrier.name, host, port, stop_mail))
        services.mail_gateway, services.mail_relay = gateway, relay
    if doors.camara is not None:
        records = SubscriberRecords()
        # The subscribers have held their SIMs for a while: activated "now", every number would read as just
        # swapped to a SIM Swap check.
        since = datetime.fromtimestamp(clock(), UTC) - SUBSCRIBED_FOR
        for number in numbers_of(carrier):
            records.activate(f"+{number}", since)
        # Servers (the system under test) authenticate with the door's configured two-legged token.
        faults = Faults(doors.camara.too_many_requests, doors.camara.unavailable, seed)
        app = camara_app(
            records, lambda: datetime.fromtimestamp(clock(), UTC), {doors.camara.token: Grant()}, faults=faults
        )
        host, port, stop = await _serve(app, doors.camara.host, doors.camara.port)
        started.append(Door("camara", carrier.name, host, port, stop))
        services.camara = records
    _SERVICES[running.smsc] = services


async def start_doors(
    running_carriers: list[RunningCarrier], scenario: Scenario, *, clock: Callable[[], float] = time.time
) -> list[Door]:
    """Open every RCS, SMTP and CAMARA door the scenario declares for the running carriers.

    ``clock`` is the run's now (seconds since the epoch; a virtual loop's under a virtual clock): the RCS
    server's tokens and OTPs expire by it and door-originated MTs are stamped with it. If one door fails to
    start (its port is taken), the doors already open are stopped and the error propagates.
    """
    started: list[Door] = []
    plan = _rcs_plan(scenario)
    try:
        for index, running, position in _placed(running_carriers, scenario):
            await _start_one(running, position, scenario.seed * 1000 + index, plan, clock, started)
    except BaseException:
        for door in reversed(started):
            await door.stop()
        raise
    return started


def _rcs_plan(scenario: Scenario) -> NumberingPlan | None:
    # Only the RCS door needs IMSIs; building the plan costs start-up time a scenario without one need not pay.
    return NumberingPlan.from_scenario(scenario) if any(c.doors.rcs for c in scenario.carriers) else None


def _placed(running_carriers: list[RunningCarrier], scenario: Scenario) -> Iterator[tuple[int, RunningCarrier, int]]:
    # A carrier's position in the scenario picks its IMSIs (MCC/MNC); a running carrier the scenario does not
    # name (a test's) falls back to its place in the list.
    positions = {carrier.name: position for position, carrier in enumerate(scenario.carriers)}
    for index, running in enumerate(running_carriers):
        yield index, running, positions.get(running.carrier.name, index)


def subscriber_records(running_carriers: list[RunningCarrier], scenario: Scenario) -> Iterator[SubscriberRecord]:
    """The records :func:`start_doors` gives the RCS and CAMARA doors of ``running_carriers``, carrier by carrier
    (carriers with neither door hold none), each with its SIM's ICCID: the same numbers and IMSIs, by the same
    code."""
    plan = _rcs_plan(scenario)
    for _, running, position in _placed(running_carriers, scenario):
        doors = running.carrier.doors
        if doors.rcs is None and doors.camara is None:
            continue
        # The CAMARA door knows no IMSI: a carrier without an RCS door lists its numbers without SIMs.
        yield from _records_of(running, plan if doors.rcs is not None else None, position, iccid=True)
