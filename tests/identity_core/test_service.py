"""The identity service's decisions, on an in-memory store and a fake clock: authenticate and its limits, the
order of registrations, and bindings whose time ran out before the expiry sweep came by."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from identity_core import cli
from identity_core.api import make_app
from identity_core.bindings import BindingState, Reason
from identity_core.certificates import CertificateIssuer, SigningKey
from identity_core.gateway import CarrierGateway, CarrierLink, MoMessage
from identity_core.limits import Rate, VelocityLimiter, VelocityLimits
from identity_core.memory_store import MemoryStorage
from identity_core.proofs import Proof, ProofSigner
from identity_core.refusals import Refusal
from identity_core.reg_protocol import parse_reg_resp
from identity_core.service import AuthResult, IdentityService, RiskUnavailable
from identity_core.sim_swap import SimSwapClient
from identity_core.store import StorageUnavailable

T0 = 1_700_000_000.0
VICTIM = "+447700900123"
STRANGER = "+447700900999"  # never registered
TOKEN = "ab" * 32
ATTACKER_TOKEN = "cd" * 32
API_TOKEN = "server-to-server-token"


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _service(
    clock: Clock, limits: VelocityLimits | None = None, limiter_clock: Clock | None = None
) -> IdentityService:
    return IdentityService(
        MemoryStorage(),
        ProofSigner(b"k" * 32, 600.0),
        CertificateIssuer([SigningKey.generate()], validity=3600.0),
        VelocityLimiter(limits or VelocityLimits()),
        clock=clock,
        limiter_clock=limiter_clock or clock,  # one fake clock drives both unless a test tells them apart
    )


async def _registered(
    service: IdentityService, number: str = VICTIM, token: str = TOKEN, request_id: int = 1, carrier: str = "a"
) -> Proof:
    """What handle_mo does for a REG-REQ: a proof, and its pending binding recorded."""
    now = service.clock()
    proof = service.signer.issue(number, token, request_id, now)
    await service.store.record_pending(e164=number, push_token=token, request_id=request_id, carrier=carrier,
                                       proof_id=proof.proof_id, expires_at=proof.expires_at, now=now)
    return proof


def _code(result: AuthResult | Refusal) -> str:
    return result.reason.code if isinstance(result, Refusal) else "ok"


# ------------------------------------------------------------------------------- authenticate and its limits


async def test_garbage_for_a_number_does_not_lock_out_the_phone_that_holds_its_proof() -> None:
    clock = Clock()
    service = _service(clock)
    proof = await _registered(service)
    burst = int(VelocityLimits().auth_per_number.burst)  # type: ignore[union-attr]
    garbage = [_code(await service.authenticate(VICTIM, ATTACKER_TOKEN, "00" * 30)) for _ in range(5 * burst)]
    assert garbage[-1] == "rate_limited"  # the attacker is limited...
    clock.now += 1
    result = await service.authenticate(VICTIM, TOKEN, proof.hex)  # ...the phone is not
    assert isinstance(result, AuthResult)
    assert result.binding.state.value == "active"


async def test_failed_attempts_are_limited_alike_for_known_and_unknown_numbers() -> None:
    clock = Clock()
    service = _service(clock)
    await _registered(service)
    answers = {}
    for number in (VICTIM, STRANGER):
        answers[number] = [_code(await service.authenticate(number, TOKEN, "11" * 30)) for _ in range(12)]
    assert answers[VICTIM] == answers[STRANGER]
    assert answers[VICTIM][0] == "forged"
    assert answers[VICTIM][-1] == "rate_limited"


async def test_replays_count_as_failed_attempts() -> None:
    clock = Clock()
    service = _service(clock, VelocityLimits(auth_per_number=Rate(0.0, 2.0)))
    proof = await _registered(service)
    codes = [_code(await service.authenticate(VICTIM, TOKEN, proof.hex)) for _ in range(4)]
    assert codes == ["ok", "replayed", "replayed", "rate_limited"]


async def test_the_carrier_limit_is_the_carrier_the_binding_registered_through() -> None:
    clock = Clock()
    # One authenticate per carrier, ever: enough to tell whose bucket a call drew on.
    service = _service(clock, VelocityLimits(auth_per_carrier=Rate(0.0, 1.0)))
    proofs = [
        (number, await _registered(service, number, carrier=carrier))
        for number, carrier in (("+447700900001", "a"), ("+447700900002", "a"), ("+447700900003", "b"))
    ]
    codes = [_code(await service.authenticate(number, TOKEN, proof.hex)) for number, proof in proofs]
    assert codes == ["ok", "rate_limited", "ok"]


async def test_failed_attempts_do_not_drain_a_carrier_bucket() -> None:
    clock = Clock()
    fresh = _service(clock, VelocityLimits(auth_per_carrier=Rate(0.0, 1.0)))
    proof = await _registered(fresh, carrier="a")
    for _ in range(3):
        await fresh.authenticate(STRANGER, TOKEN, "22" * 30)
    assert _code(await fresh.authenticate(VICTIM, TOKEN, proof.hex)) == "ok"


async def test_replays_and_revoked_proofs_cost_no_store_write_and_no_carrier_token() -> None:
    # A spent or revoked proof is recognised from the binding read: it must not reach the writer (a transaction,
    # an fsync per batch) nor draw on the carrier's bucket, which a victim on the same carrier needs.
    clock = Clock()
    service = _service(clock, VelocityLimits(auth_per_carrier=Rate(0.0, 3.0)))
    mine = await _registered(service, "+447700900666", carrier="acme")
    revoked = await _registered(service, "+447700900777", carrier="acme")
    victim = await _registered(service, VICTIM, carrier="acme")
    await service.carrier_event("sim_swap", "+447700900777")
    writes = 0
    authenticate = service.store.authenticate

    async def counting(**kwargs: object) -> object:
        nonlocal writes
        writes += 1
        return await authenticate(**kwargs)  # type: ignore[arg-type]

    service.store.authenticate = counting  # type: ignore[method-assign]
    assert _code(await service.authenticate("+447700900666", TOKEN, mine.hex)) == "ok"
    assert writes == 1
    codes = {_code(await service.authenticate("+447700900666", TOKEN, mine.hex)) for _ in range(20)}
    codes |= {_code(await service.authenticate("+447700900777", TOKEN, revoked.hex)) for _ in range(20)}
    assert codes == {"replayed", "forged", "rate_limited"}
    assert writes == 1
    assert _code(await service.authenticate(VICTIM, TOKEN, victim.hex)) == "ok"
    assert writes == 2


async def test_a_wall_clock_stepped_back_does_not_freeze_the_limits() -> None:
    # The limiter runs on its own (monotonic) clock: a wall clock stepped back by an NTP step or a VM resume froze
    # it at the latest wall time seen, so an emptied bucket did not refill until the wall clock caught up.
    wall, steady = Clock(), Clock()
    service = _service(wall, VelocityLimits(auth_per_number=Rate(1.0, 1.0)), limiter_clock=steady)
    wall.now += 100
    assert _code(await service.authenticate(VICTIM, TOKEN, "00" * 30)) == "forged"
    assert _code(await service.authenticate(VICTIM, TOKEN, "00" * 30)) == "rate_limited"
    wall.now -= 100  # the wall clock is corrected back; two seconds really pass
    steady.now += 2
    assert _code(await service.authenticate(VICTIM, TOKEN, "00" * 30)) == "forged"


def test_the_limiter_runs_on_the_monotonic_clock_by_default() -> None:
    service = IdentityService(
        MemoryStorage(), ProofSigner(b"k" * 32, 600.0), CertificateIssuer([SigningKey.generate()], validity=3600.0),
        VelocityLimiter(VelocityLimits()),
    )
    assert service.limiter_clock is time.monotonic
    assert service.clock is time.time


# ------------------------------------------------------------------------------------ order of registrations


async def test_an_older_proof_redeemed_after_a_newer_one_is_refused() -> None:
    clock = Clock()
    service = _service(clock)
    older = await _registered(service, token="aa" * 32, request_id=1)
    clock.now += 100
    newer = await _registered(service, token="bb" * 32, request_id=2)
    clock.now += 10
    assert _code(await service.authenticate(VICTIM, "bb" * 32, newer.hex)) == "ok"
    clock.now += 190
    assert _code(await service.authenticate(VICTIM, "aa" * 32, older.hex)) == "forged"
    current = await service.lookup(VICTIM)
    assert current is not None
    assert (current.push_token, current.state.value) == ("bb" * 32, "active")


# ------------------------------------------------------------------------- risk check: what changes during the wait


class SlowSimSwap(SimSwapClient):
    """A carrier SIM Swap API that answers ``swapped`` after ``meanwhile`` has run: what else reached the service
    during the seconds a real carrier takes to answer."""

    def __init__(self, swapped: bool, meanwhile: Callable[[], Awaitable[object]]) -> None:
        super().__init__({})
        self.answer = swapped
        self.meanwhile = meanwhile

    async def swapped(self, carrier: str, e164: str) -> bool:
        await self.meanwhile()
        return self.answer


async def _bound(service: IdentityService, clock: Clock, token: str = TOKEN, request_id: int = 1) -> AuthResult:
    proof = await _registered(service, token=token, request_id=request_id)
    clock.now += 1
    result = await service.authenticate(VICTIM, token, proof.hex)
    assert isinstance(result, AuthResult)
    return result


def _outcomes(service: IdentityService) -> dict[str, float]:
    return {outcome: service.registry.get_sample_value(
        "identity_risk_checks_total", {"carrier": "a", "outcome": outcome}) or 0.0
        for outcome in ("trusted", "sim_swap", "binding_changed")}


async def test_a_binding_revoked_while_the_carrier_answers_is_not_trusted() -> None:
    clock = Clock()
    service = _service(clock)
    await _bound(service, clock)
    service.sim_swap = SlowSimSwap(False, lambda: service.carrier_event("port_out", VICTIM))
    assert await service.risk_check(VICTIM, "payment") is None  # was RiskVerdict(True, <the binding, active>)
    assert _outcomes(service) == {"trusted": 0.0, "sim_swap": 0.0, "binding_changed": 1.0}


async def test_a_binding_deleted_while_the_carrier_answers_is_not_trusted() -> None:
    clock = Clock()
    service = _service(clock)
    await _bound(service, clock)
    service.sim_swap = SlowSimSwap(False, lambda: service.delete(VICTIM))
    assert await service.risk_check(VICTIM) is None


async def test_a_binding_that_expires_while_the_carrier_answers_is_not_trusted() -> None:
    clock = Clock()
    service = _service(clock)
    bound = await _bound(service, clock)

    async def run_out() -> None:
        clock.now = bound.binding.expires_at

    service.sim_swap = SlowSimSwap(False, run_out)
    assert await service.risk_check(VICTIM) is None


async def _superseded_while_the_carrier_answers() -> IdentityService:
    """A bound number whose carrier answers "not swapped" only after another device has authenticated for it."""
    clock = Clock()
    service = _service(clock)
    await _bound(service, clock)
    newer = await _registered(service, token=ATTACKER_TOKEN, request_id=2)

    async def another_device_authenticates() -> None:
        clock.now += 1
        assert isinstance(await service.authenticate(VICTIM, ATTACKER_TOKEN, newer.hex), AuthResult)

    service.sim_swap = SlowSimSwap(False, another_device_authenticates)
    return service


async def test_a_binding_superseded_while_the_carrier_answers_gets_no_verdict() -> None:
    service = await _superseded_while_the_carrier_answers()
    # The "not swapped" was asked about the old binding: neither it (revoked) nor the new one is vouched for.
    with pytest.raises(RiskUnavailable) as raised:
        await service.risk_check(VICTIM)
    assert raised.value.outcome == "binding_changed"
    current = await service.lookup(VICTIM)
    assert current is not None
    assert (current.push_token, current.state) == (ATTACKER_TOKEN, BindingState.ACTIVE)  # left as it was


async def test_a_binding_unchanged_while_the_carrier_answers_is_trusted() -> None:
    clock = Clock()
    service = _service(clock)
    bound = await _bound(service, clock)

    async def time_passes() -> None:
        clock.now += 4.9

    service.sim_swap = SlowSimSwap(False, time_passes)
    verdict = await service.risk_check(VICTIM)
    assert verdict is not None
    assert (verdict.trusted, verdict.binding) == (True, bound.binding)
    assert _outcomes(service) == {"trusted": 1.0, "sim_swap": 0.0, "binding_changed": 0.0}


async def test_a_swap_revokes_what_existed_when_asked_not_a_registration_made_during_the_wait() -> None:
    clock = Clock()
    service = _service(clock)
    bound = await _bound(service, clock)
    older_pending = await _registered(service, token="ee" * 32, request_id=2)  # before the check: revoked too
    later: list[bytes] = []

    async def the_phone_registers_again() -> None:
        clock.now += 2
        later.append((await _registered(service, token=ATTACKER_TOKEN, request_id=3)).proof_id)

    service.sim_swap = SlowSimSwap(True, the_phone_registers_again)
    verdict = await service.risk_check(VICTIM)
    assert verdict is not None
    assert (verdict.trusted, verdict.reason) == (False, Reason.SIM_SWAP)
    assert verdict.binding.proof_id == bound.binding.proof_id  # the answer is about the binding it checked
    assert (verdict.binding.state, verdict.binding.reason) == (BindingState.REVOKED, Reason.SIM_SWAP)
    before = await service.store.get_by_proof(older_pending.proof_id)
    assert before is not None
    assert (before.state, before.reason) == (BindingState.REVOKED, Reason.SIM_SWAP)
    during = await service.store.get_by_proof(later[0])
    assert during is not None
    assert during.state is BindingState.PENDING  # was revoked as well
    assert service.registry.get_sample_value("identity_revocations_total", {"reason": "sim_swap"}) == 1.0


async def test_a_swap_answered_after_a_delete_shows_the_checked_binding_as_it_ended() -> None:
    clock = Clock()
    service = _service(clock)
    bound = await _bound(service, clock)
    service.sim_swap = SlowSimSwap(True, lambda: service.delete(VICTIM))
    verdict = await service.risk_check(VICTIM)
    assert verdict is not None
    assert (verdict.trusted, verdict.reason) == (False, Reason.SIM_SWAP)
    assert verdict.binding.proof_id == bound.binding.proof_id
    assert (verdict.binding.state, verdict.binding.reason) == (BindingState.REVOKED, Reason.DELETED)


async def test_the_api_answers_a_binding_changed_during_the_check_as_documented() -> None:
    service = await _superseded_while_the_carrier_answers()
    async with TestClient(TestServer(make_app(service, [API_TOKEN]))) as http:
        response = await http.post(f"/v1/phone-numbers/{VICTIM}/risk-check",
                                   headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert (response.status, response.content_type) == (503, "application/problem+json")
        problem = await response.json()
        assert (problem["trusted"], problem["cause"]) == (False, "binding_changed")
        # Nothing to wait for (the carrier answered): a new check judges the new binding at once.
        assert response.headers["Retry-After"] == "1"
        assert "changed during the check" in problem["detail"]


# ------------------------------------------------------------------------------------------------------ expiry


async def test_a_binding_past_its_certificate_validity_reads_expired_before_any_sweep() -> None:
    clock = Clock()
    service = _service(clock)  # certificates valid 3600 s
    proof = await _registered(service)
    clock.now += 1
    bound = await service.authenticate(VICTIM, TOKEN, proof.hex)
    assert isinstance(bound, AuthResult)
    clock.now = bound.binding.expires_at - 0.001
    still = await service.lookup(VICTIM)
    assert still is not None
    assert still.state is BindingState.ACTIVE
    clock.now = bound.binding.expires_at + 5
    lapsed = await service.lookup(VICTIM)
    assert lapsed is not None
    assert (lapsed.state, lapsed.reason, lapsed.expired_at) == (
        BindingState.EXPIRED, Reason.LAPSED, bound.binding.expires_at)
    assert await service.risk_check(VICTIM) is None  # no active binding to trust
    # The sweep writes down what the reads already said.
    assert await service.expire_due() == 1
    assert await service.lookup(VICTIM) == lapsed
    assert await service.expire_due() == 0


async def test_the_api_answers_expired_for_a_lapsed_binding() -> None:
    clock = Clock()
    service = _service(clock)
    proof = await _registered(service)
    bound = await service.authenticate(VICTIM, TOKEN, proof.hex)
    assert isinstance(bound, AuthResult)
    clock.now = bound.binding.expires_at
    async with TestClient(TestServer(make_app(service, [API_TOKEN]))) as http:
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        response = await http.get(f"/v1/phone-numbers/{VICTIM}", headers=headers)
        assert response.status == 200
        body = await response.json()
        assert (body["state"], body["reason"]) == ("expired", "lapsed")
        response = await http.post(f"/v1/phone-numbers/{VICTIM}/risk-check", headers=headers)
        assert response.status == 404


async def test_serve_sweeps_expired_bindings_periodically_and_survives_a_failing_store() -> None:
    clock = Clock()
    service = _service(clock)
    await _registered(service)  # pending, its proof good for 600 s
    failures = 0
    real = service.store.expire_due

    async def flaky(now: float) -> int:
        nonlocal failures
        if failures < 2:
            failures += 1
            raise StorageUnavailable("disk I/O error")
        return await real(now)

    service.store.expire_due = flaky  # type: ignore[method-assign]
    sweeper = asyncio.create_task(cli._sweep_expired(service, 0.01))
    try:
        clock.now += 600
        async with asyncio.timeout(5):
            while (await service.store.counts())["expired"] == 0:
                await asyncio.sleep(0.01)
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
    assert failures == 2
    assert service.registry.get_sample_value("identity_expirations_total") == 1.0


# ------------------------------------------------------------------------------------ receipts and gateways


class _Gateway:
    """Just enough of a carrier gateway for handle_mo: every MT is accepted as ``mt-1``."""

    async def send_mt(self, destination: str, text: str) -> str:
        return "mt-1"

    def metrics(self) -> dict[str, int]:
        return {}


async def test_a_final_receipt_after_an_enroute_one_still_matches() -> None:
    service = _service(Clock())
    service.gateways["a"] = _Gateway()  # type: ignore[assignment]
    mo = MoMessage(carrier="a", source="447700900123", source_ton=1, source_npi=1, sender=VICTIM,
                   destination="447786205094", text=f"REG-REQ?v=3;t={TOKEN};r=7;", received_at=T0)
    assert await service.handle_mo(mo) is None
    # The gateway keeps waiting after an intermediate receipt; so must the service, or the final one that
    # follows is counted unmatched.
    await service.handle_receipt("a", "mt-1", "ENROUTE", None, final=False)
    await service.handle_receipt("a", "mt-1", "DELIVRD", None, final=True)
    await service.handle_receipt("a", "mt-1", "DELIVRD", None, final=True)  # a duplicate: now unmatched
    sample = service.registry.get_sample_value
    assert sample("identity_receipts_total", {"carrier": "a", "state": "ENROUTE"}) == 1.0
    assert sample("identity_receipts_total", {"carrier": "a", "state": "DELIVRD"}) == 1.0
    assert sample("identity_receipts_total", {"carrier": "a", "state": "unmatched"}) == 1.0


class _RecordingGateway(_Gateway):
    """A gateway that keeps the MTs it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send_mt(self, destination: str, text: str) -> str:
        self.sent.append((destination, text))
        return f"mt-{len(self.sent)}"


async def test_a_reg_req_delivered_twice_seconds_apart_gets_the_same_proof() -> None:
    clock = Clock()
    service = _service(clock)
    gateway = service.gateways["a"] = _RecordingGateway()  # type: ignore[assignment]
    mo = MoMessage(carrier="a", source=VICTIM[1:], source_ton=1, source_npi=1, sender=VICTIM,
                   destination="447786205094", text=f"REG-REQ?v=3;t={TOKEN};r=7;", received_at=T0)
    clock.now = T0 + 0.9
    assert await service.handle_mo(mo) is None
    clock.now = T0 + 2.9  # the carrier delivers the same MO again, two seconds (and a second boundary) later
    assert await service.handle_mo(mo) is None
    proofs = [parse_reg_resp(text) for _, text in gateway.sent]
    assert all(not isinstance(p, Refusal) for p in proofs)
    first, second = (p.proof_hex for p in proofs if not isinstance(p, Refusal))
    assert first == second  # was two proofs, each redeemable
    assert await service.store.counts() == {"pending": 1, "active": 0, "expired": 0, "revoked": 0}
    assert _code(await service.authenticate(VICTIM, TOKEN, first)) == "ok"
    # A repeat after the window is a new issue, as before.
    clock.now += service.recent_requests.window
    assert await service.handle_mo(mo) is None
    later = parse_reg_resp(gateway.sent[-1][1])
    assert not isinstance(later, Refusal)
    assert later.proof_hex != first


@pytest.mark.parametrize("text", [f"REG-REQ?v=3;t={TOKEN};r=7;", "HELP"])
async def test_a_sender_longer_than_e164_is_refused_as_a_wrong_sender_without_taking_a_token(text: str) -> None:
    # A gateway whose normalisation let 17 digits through (phonenumbers calls +49 and 15 digits possible): the
    # proof signer cannot issue for it, and used to raise ValueError out of handle_mo after the limiter had
    # already taken a token from the number's, the prefix's and the carrier's buckets.
    service = _service(Clock(), VelocityLimits(reg_per_carrier=Rate(0.0, 1.0)))
    service.gateways["a"] = _Gateway()  # type: ignore[assignment]
    long_sender = "+49333333333333333"
    mo = MoMessage(carrier="a", source=long_sender[1:], source_ton=1, source_npi=1, sender=long_sender,
                   destination="447786205094", text=text, received_at=T0)
    refused = await service.handle_mo(mo)
    assert isinstance(refused, Refusal)
    assert refused.reason.code == "wrong_sender"
    # The carrier's only token is still there for a real phone.
    good = MoMessage(carrier="a", source=VICTIM[1:], source_ton=1, source_npi=1, sender=VICTIM,
                     destination="447786205094", text=text, received_at=T0)
    assert await service.handle_mo(good) is None


async def test_metrics_show_every_gateway_counter_by_carrier() -> None:
    service = _service(Clock())
    link = CarrierLink(name="carrier-a", smsc_host="127.0.0.1", smsc_port=1, system_id="s", password="p",
                       gateway="447786205094")

    async def on_mo(mo: MoMessage) -> None:
        pass

    # Added after the service (and its registry) exist, as serve() does; never started: its counters are set here.
    gateway = service.gateways["carrier-a"] = CarrierGateway(link, on_mo)
    counts = {"mo_rejected": 3, "mo_incomplete": 4, "reconnects": 5, "liveness_failures": 6, "mt_throttled": 7,
              "receipts_unmatched": 8}
    for name, value in counts.items():
        setattr(gateway, name, value)
    async with TestClient(TestServer(make_app(service, (API_TOKEN,)))) as http:
        response = await http.get("/metrics", headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert response.status == 200
        text = await response.text()
    for name, value in counts.items():
        assert f'identity_gateway_{name}_total{{carrier="carrier-a"}} {value}.0' in text
    assert 'identity_gateway_awaiting_receipt{carrier="carrier-a"} 0.0' in text
    gateway.mo_rejected += 1  # read at scrape time, not copied once
    assert service.registry.get_sample_value("identity_gateway_mo_rejected_total", {"carrier": "carrier-a"}) == 4.0


async def test_metrics_show_prefix_blocks_started_and_in_force() -> None:
    clock = Clock()
    limits = VelocityLimits(reg_per_number=None, reg_per_prefix=None, reg_per_carrier=None, pump_window=10.0,
                            pump_floor=1.0, pump_block=60.0, prefix_digits=6)
    service = _service(clock, limits)
    service.gateways["a"] = _Gateway()  # type: ignore[assignment]
    sample = service.registry.get_sample_value
    assert (sample("identity_prefix_blocks_total"), sample("identity_prefix_blocked")) == (0.0, 0.0)

    def reg_req(number: int) -> MoMessage:
        return MoMessage(carrier="a", source=f"4477009{number:05d}", source_ton=1, source_npi=1,
                         sender=f"+4477009{number:05d}", destination="447786205094",
                         text=f"REG-REQ?v=3;t={TOKEN};r={number + 1};", received_at=clock.now)

    # Ten REG-REQ in one window from a silent prefix are all the floor allows; the eleventh starts a block.
    for number in range(10):
        assert await service.handle_mo(reg_req(number)) is None
    refused = await service.handle_mo(reg_req(10))
    assert isinstance(refused, Refusal)
    assert refused.reason.code == "prefix_blocked"
    assert (sample("identity_prefix_blocks_total"), sample("identity_prefix_blocked")) == (1.0, 1.0)
    clock.now += 60.0  # the block has run out: no longer in force, still counted
    assert (sample("identity_prefix_blocks_total"), sample("identity_prefix_blocked")) == (1.0, 0.0)
    assert sample("identity_pump_counter_evictions_total") == 0.0
    assert sample("identity_bucket_evictions_total") == 0.0


async def test_metrics_show_buckets_dropped_at_the_cap_before_they_refilled() -> None:
    clock = Clock()
    limits = VelocityLimits(reg_per_number=Rate(0.001, 3.0), max_entries=10, pump_floor=1e6)
    service = _service(clock, limits)
    for i in range(100):
        assert service.limiter.check("reg", f"+1555{i:07d}", "a", clock.now) is None
    assert service.limiter.lossy_bucket_evictions == 90
    assert service.registry.get_sample_value("identity_bucket_evictions_total") == 90.0
    assert service.registry.get_sample_value("identity_pump_counter_evictions_total") == 0.0
