"""Activation and renewal: REG-REQ by SMS, REG-RESP by SMS, authenticate over HTTP -- once, or again later.

Theory of operation
-------------------
A phone is a row: its step, timestamps and next deadline live in numpy arrays. An arrival sends REG-REQ by
handing an MO to the phone's carrier's SMSC (in process); the REG-RESP comes back as an MT the SMSC delivers to
the phone's number and is parsed into a proof; after a think time the phone calls authenticate through the flow's
fixed pool of HTTP workers. The proof is the only per-phone value held outside the columns, and only while the
phone is between REG-RESP and authenticate. Deadlines live in a :class:`~carrier_sim.population.scheduler.DueQueue`
over the ``next_due`` column, so a tick touches only the phones whose think time is over.

Renewal is activation with a second round: once the first certificate is issued, the phone waits a think time and
registers again with the same device token (the identity core renews by a new registration); the round counts
only if the new certificate expires later than the old one.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import json
from typing import ClassVar

import aiohttp
import numpy as np
import numpy.typing as npt

from carrier_sim.population.scheduler import DueQueue
from carrier_sim.runner.flows.base import NEAR_DUE, AwaitingAnswer, FlowContext, PhoneFlow, next_row
from carrier_sim.scenario.model import Flow
from carrier_sim.smpp.coding import decode_text
from carrier_sim.smpp.errors import SmppError
from carrier_sim.smsc.store import StoredMessage

__all__ = ["HTTP_WORKERS", "ActivationFlow", "RenewalFlow", "Step", "push_token", "request_id"]

#: Authenticate calls in flight at most, per flow: a fixed pool, never a task per phone.
HTTP_WORKERS = 512
#: Request ids of later rounds are offset by this, so a late REG-RESP of round 0 never completes round 1.
_ROUND_STRIDE = 10**12


class Step(enum.IntEnum):
    """Where a phone is in the flow (the state column)."""

    WAITING = 0
    REG_SENT = 1
    THINKING = 2
    AUTH_SENT = 3
    DONE = 4
    FAILED = 5
    RENEW_WAIT = 6


def push_token(seed: int, index: int) -> str:
    """The device push token of phone ``index`` (global): a pure function of (seed, index)."""
    return hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=32).hexdigest()


def request_id(index: int, round_: int) -> int:
    """The REG-REQ request id of phone ``index`` (global) in round ``round_``."""
    return index + 1 + round_ * _ROUND_STRIDE


def _certificate_expiry(certificate: str) -> float | None:
    # Only the claim is read, not trusted: the flow compares two certificates the SUT issued to this phone.
    try:
        payload = certificate.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


class ActivationFlow(PhoneFlow):
    """REG-REQ -> REG-RESP -> think -> authenticate, ``rounds`` times per phone."""

    name: ClassVar[str] = "activation"
    stage_names: ClassVar[tuple[str, ...]] = ("reg_req_sent", "reg_resp_received", "authenticate_sent", "done")
    rounds: ClassVar[int] = 1

    def __init__(self, ctx: FlowContext, spec: Flow, *, reg_timeout: float = 30.0) -> None:
        super().__init__(ctx, spec)
        n = len(ctx.population)
        self.state = np.zeros(n, dtype=np.int8)
        self.round = np.zeros(n, dtype=np.int8)
        self.t_round = np.full(n, np.nan)  # when the current round's REG-REQ went out
        self.t_resp = np.full(n, np.nan)
        self.t_auth = np.full(n, np.nan)  # due to authenticate (queued for one of the runner's HTTP workers)
        self.t_sent = np.full(n, np.nan)  # a worker sent its authenticate request
        self.expiry = np.full(n, np.nan)  # the latest certificate's exp claim
        #: A SIM swap or a port-out hit the phone since its latest certificate: the SUT was told (or must find
        #: out) and revokes it, so the phone holds no valid certificate until it is issued a new one.
        self.revoked = np.zeros(n, dtype=np.bool_)
        self.next_due = np.full(n, np.inf)
        self.due = DueQueue(self.next_due, resolution=0.02)
        self.reg_timeout = reg_timeout
        self.proofs: dict[int, str] = {}
        self.auth_queue: asyncio.Queue[int] = asyncio.Queue()
        # Phones whose think time starts now, scheduled together at the next tick: one set_due and one draw for
        # a tick's worth of MTs instead of a numpy round trip per MT (~8 % of the runner's CPU in a storm).
        self._thinking_rows: list[int] = []
        self._thinking_since: list[float] = []
        #: (sent at, row) of every REG-REQ, in the order sent: the oldest still unanswered times out first.
        self._reg_sent = AwaitingAnswer(self.state, self.t_round, Step.REG_SENT)

    # -- SMS legs --------------------------------------------------------------------------------------------

    def arrive(self, rows: npt.NDArray[np.int64], now: float) -> None:
        """Phones start activating: each sends its REG-REQ."""
        self.counters.started += len(rows)
        self.t_started[rows] = now
        self._send_reg_req(rows, now)

    def _send_reg_req(self, rows: npt.NDArray[np.int64], now: float) -> None:
        ctx = self.ctx
        for row in rows.tolist():
            index = int(ctx.index[row])
            text = f"REG-REQ?v=3;t={push_token(ctx.seed, index)};r={request_id(index, int(self.round[row]))};"
            carrier = int(ctx.carrier_of[row])
            self.t_round[row] = now
            self.t_resp[row] = self.t_auth[row] = self.t_sent[row] = np.nan  # the round's, not an earlier one's
            if ctx.send_mo(carrier, str(int(ctx.msisdns[row])), ctx.carriers[carrier].carrier.gateway, text, now):
                self.state[row] = Step.REG_SENT
                self._reg_sent.add(now, row)
                self.counters.reached("reg_req_sent")
            else:
                self.state[row] = Step.FAILED
                self.counters.fail("mo_unroutable")

    def on_mt(self, row: int, message: StoredMessage, now: float) -> None:
        """A REG-RESP for the phone's current request moves it to THINKING with its authenticate due later."""
        if self.state[row] != Step.REG_SENT:
            return
        try:
            text = decode_text(message.data, message.data_coding)
        except SmppError:
            return
        proof = _proof_of(text, request_id(int(self.ctx.index[row]), int(self.round[row])))
        if proof is None:
            return
        self.proofs[row] = proof
        self.state[row] = Step.THINKING
        self.t_resp[row] = now
        self.counters.reached("reg_resp_received")
        self._think_from(row, now)

    def _think_from(self, row: int, now: float) -> None:
        """Phone ``row`` starts a think time at ``now``; it is put on the due queue at the next tick."""
        self._thinking_rows.append(row)
        self._thinking_since.append(now)

    def _schedule_thinking(self) -> None:
        if not self._thinking_rows:
            return
        rows = np.array(self._thinking_rows, dtype=np.int64)
        since = np.array(self._thinking_since, dtype=np.float64)
        self._thinking_rows.clear()
        self._thinking_since.clear()
        self.due.set_due(rows, since + self.think(rows))

    def tick(self, now: float) -> None:
        """Queue the phones whose think time is over; start the next round of those waiting to renew."""
        # Think times that started since the last tick are scheduled from when they started, so a think time
        # already over is popped below, exactly as if it had been scheduled at once.
        self._schedule_thinking()
        for row in self.due.pop_due(now).tolist():
            if self.state[row] == Step.THINKING:
                self.state[row] = Step.AUTH_SENT
                self.t_auth[row] = now
                self.counters.reached("authenticate_sent")
                self.auth_queue.put_nowait(row)
            elif self.state[row] == Step.RENEW_WAIT:
                self.round[row] += 1
                self._send_reg_req(np.array([row], dtype=np.int64), now)

    def quiet_until(self, now: float) -> float:
        """The next phone due (think time over, renewal time come), or the first REG-REQ to time out."""
        if self._thinking_rows:
            return now  # think times to schedule at the next tick
        due = self.due.next_time()
        if due - now < NEAR_DUE:
            return due  # no whole tick to skip: spare the scan below
        oldest = self._reg_sent.oldest()  # the first REG-REQ to time out
        return due if oldest is None else min(due, oldest + self.reg_timeout)

    def expire(self, now: float) -> None:
        """Phones still waiting for their REG-RESP after ``reg_timeout`` fail: taken from the head of the queue of
        REG-REQs sent, oldest first, so a sweep costs what it finds, not a scan of the shard's columns."""
        late = self._reg_sent.expire(now - self.reg_timeout, Step.FAILED)
        if late:
            self.counters.fail("no_reg_resp", late)

    # -- HTTP leg --------------------------------------------------------------------------------------------

    async def serve(self) -> None:
        """``HTTP_WORKERS`` workers calling authenticate for queued phones."""
        async with asyncio.TaskGroup() as workers:
            for _ in range(HTTP_WORKERS):
                workers.create_task(self._worker())

    async def _worker(self) -> None:
        ctx = self.ctx
        assert ctx.http is not None
        clock = ctx.clock
        while True:
            row = await next_row(self.auth_queue)
            self.sending(row, clock())
            index = int(ctx.index[row])
            body = {"phone_number": f"+{int(ctx.msisdns[row])}", "push_token": push_token(ctx.seed, index),
                    "signature": self.proofs.pop(row, "")}
            certificate: str | None = None
            try:
                async with ctx.http.post(f"{ctx.sut_api}/v1/phone-numbers/authenticate", json=body) as response:
                    reason = "" if response.status == 200 else f"http_{response.status}"
                    if response.status == 200:
                        answer = await response.json(content_type=None)
                        certificate = answer.get("certificate") if isinstance(answer, dict) else None
                    else:
                        await response.read()
            except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                reason = f"http_error_{type(err).__name__}"
            self.authenticated(row, certificate, reason, clock())

    def sending(self, row: int, now: float) -> None:
        """A runner worker took phone ``row`` from the queue and sends its authenticate call now."""
        self.t_sent[row] = now

    def authenticated(self, row: int, certificate: str | None, reason: str, now: float) -> None:
        """The SUT's answer to phone ``row``'s authenticate: a certificate, or the reason it failed."""
        if certificate is None:
            self.state[row] = Step.FAILED
            self.counters.fail(reason or "no_certificate")
            return
        expiry = _certificate_expiry(certificate)
        if self.round[row] > 0 and (expiry is None or not expiry > self.expiry[row]):
            # A renewal that did not extend the certificate did not renew anything.
            self.state[row] = Step.FAILED
            self.counters.fail("not_renewed")
            return
        self.expiry[row] = np.nan if expiry is None else expiry
        self.revoked[row] = False
        if self.round[row] + 1 < self.rounds:
            self.state[row] = Step.RENEW_WAIT
            self.counters.reached("renew_wait")
            self._think_from(row, now)
            return
        self.state[row] = Step.DONE
        self.t_done[row] = now
        self.counters.reached("done")
        self.counters.completed += 1

    def latencies(self) -> dict[str, npt.NDArray[np.float64]]:
        """The whole flow, REG-REQ to REG-RESP and authenticate, of the phones' last round."""
        ok = self.state == Step.DONE
        responded = ~np.isnan(self.t_resp)
        sent = ok & ~np.isnan(self.t_sent)
        # Every phone that waited for a worker, whatever came of its call: the queue delayed failures too.
        waited = ~np.isnan(self.t_sent) & ~np.isnan(self.t_auth)
        return {
            self.name: (self.t_done[ok] - self.t_round[ok] if self.rounds > 1 else
                        self.t_done[ok] - self.t_started[ok]).astype(np.float64),
            "reg_resp": (self.t_resp[responded] - self.t_round[responded]).astype(np.float64),
            # The SUT's answer time, request to response; the wait for a free runner worker before it is the
            # harness's own queue, reported apart so that neither hides in the other.
            "authenticate": (self.t_done[sent] - self.t_sent[sent]).astype(np.float64),
            "auth_queue": (self.t_sent[waited] - self.t_auth[waited]).astype(np.float64),
        }

    def finish(self) -> None:
        """Phones mid-flow when the run ends count as failed."""
        lost = np.nonzero((self.state >= Step.REG_SENT) & (self.state <= Step.AUTH_SENT)
                          | (self.state == Step.RENEW_WAIT))[0]
        if len(lost):
            self.state[lost] = Step.FAILED
            self.counters.fail("unfinished", len(lost))


class RenewalFlow(ActivationFlow):
    """Activation, then after a think time a second registration that must renew the certificate.

    Its latency (``renewal.latency.*``) is the renewal round's, REG-REQ to new certificate."""

    name: ClassVar[str] = "renewal"
    stage_names: ClassVar[tuple[str, ...]] = (
        "reg_req_sent", "reg_resp_received", "authenticate_sent", "renew_wait", "done")
    rounds: ClassVar[int] = 2


def _proof_of(text: str, rid: int) -> str | None:
    if not text.startswith("REG-RESP?"):
        return None
    fields = dict(part.split("=", 1) for part in text[len("REG-RESP?"):].split(";") if "=" in part)
    if fields.get("r") != str(rid):
        return None
    return fields.get("s")


