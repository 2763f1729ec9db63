"""The activation, renewal and MO/MT flows as columns, driven by hand: no sockets, a fake carrier."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from carrier_sim.population.columns import Population
from carrier_sim.runner.flows.activation import ActivationFlow, RenewalFlow, Step, push_token, request_id
from carrier_sim.runner.flows.base import FlowContext
from carrier_sim.runner.flows.messaging import MoMtFlow
from carrier_sim.scenario.loader import load_scenario
from carrier_sim.scenario.model import Distribution, Flow
from carrier_sim.smpp.receipt import MessageState
from carrier_sim.smsc.store import StoredMessage

ROOT = Path(__file__).resolve().parents[4]


class FakeCarriers:
    """Records the MOs phones send; refuses them when told to."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str, str, str]] = []
        self.accept = True

    def __call__(self, carrier: int, source: str, destination: str, text: str, now: float) -> bool:
        self.sent.append((carrier, source, destination, text))
        return self.accept


def _context(phones: int = 20) -> tuple[FlowContext, FakeCarriers]:
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml", [f"population.phones={phones}"])
    population = Population(scenario)
    carriers = FakeCarriers()

    class Running:
        def __init__(self, carrier: object) -> None:
            self.carrier = carrier

    ctx = FlowContext(scenario.seed, population, [Running(c) for c in scenario.carriers],  # type: ignore[misc]
                      lambda: 0.0, carriers)
    return ctx, carriers


def _mt(destination: int, text: str, source: str = "447786205094") -> StoredMessage:
    return StoredMessage(message_id=1, system_id="identity", service_type="", source_addr=source,
                         destination_addr=str(destination), data=text.encode(), data_coding=0, esm_class=0,
                         registered_delivery=0, submitted_at=0.0, deliver_at=0.0, expire_at=1e9,
                         state=MessageState.ENROUTE)


def _certificate(exp: float) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJFZERTQSJ9.{claims}.c2ln"


SPEC = Flow("activation", think_time=Distribution("fixed", value=2.0))


def test_activation_sends_reg_req_with_the_phones_token_and_completes_on_certificate() -> None:
    ctx, carriers = _context()
    flow = ActivationFlow(ctx, SPEC)
    rows = np.array([0, 3], dtype=np.int64)
    flow.arrive(rows, 10.0)
    assert flow.counters.started == 2
    assert flow.in_flight == 2
    carrier, source, destination, text = carriers.sent[0]
    assert source == str(int(ctx.msisdns[0]))
    assert destination == ctx.carriers[carrier].carrier.gateway
    assert text == f"REG-REQ?v=3;t={push_token(ctx.seed, 0)};r={request_id(0, 0)};"
    # A REG-RESP for another request id is not this phone's: ignored.
    flow.on_mt(0, _mt(int(ctx.msisdns[0]), f"REG-RESP?v=3;r={request_id(3, 0)};n=+1;s=ab"), 10.5)
    assert flow.state[0] == Step.REG_SENT
    flow.on_mt(0, _mt(int(ctx.msisdns[0]), f"REG-RESP?v=3;r={request_id(0, 0)};n=+1;s=abcd"), 10.5)
    assert flow.state[0] == Step.THINKING
    assert flow.proofs[0] == "abcd"
    flow.tick(12.0)  # think time (2 s) not over yet
    assert flow.auth_queue.empty()
    flow.tick(12.6)
    assert flow.auth_queue.get_nowait() == 0
    assert flow.state[0] == Step.AUTH_SENT
    flow.sending(0, 12.75)  # a runner worker was free 0.15 s after the phone was due
    flow.authenticated(0, _certificate(1e9), "", 12.8)
    assert flow.state[0] == Step.DONE
    assert flow.counters.completed == 1
    latencies = flow.latencies()
    assert latencies["activation"].tolist() == pytest.approx([2.8])
    # The SUT's answer time and the runner's own queue, apart.
    assert latencies["authenticate"].tolist() == pytest.approx([0.05])
    assert latencies["auth_queue"].tolist() == pytest.approx([0.15])
    # Phone 3 never hears back: expired after the REG-RESP timeout, and counted with its reason.
    flow.expire(10.0 + flow.reg_timeout + 1)
    assert flow.state[3] == Step.FAILED
    assert flow.counters.failures == {"no_reg_resp": 1}
    assert flow.in_flight == 0


def test_an_unroutable_mo_fails_the_phone_at_once() -> None:
    ctx, carriers = _context()
    carriers.accept = False
    flow = ActivationFlow(ctx, SPEC)
    flow.arrive(np.array([1], dtype=np.int64), 0.0)
    assert flow.counters.failures == {"mo_unroutable": 1}


def test_a_refused_authenticate_fails_with_the_http_status() -> None:
    ctx, _ = _context()
    flow = ActivationFlow(ctx, SPEC)
    flow.arrive(np.array([2], dtype=np.int64), 0.0)
    flow.on_mt(2, _mt(int(ctx.msisdns[2]), f"REG-RESP?v=3;r={request_id(2, 0)};n=+1;s=ff"), 0.1)
    flow.tick(5.0)
    flow.sending(2, 5.04)
    flow.authenticated(2, None, "http_403", 5.1)
    assert flow.counters.failures == {"http_403": 1}
    # Its wait for a runner worker still counts: the queue delayed the failures too. No answer time of a
    # completed activation, though.
    latencies = flow.latencies()
    assert latencies["auth_queue"].tolist() == pytest.approx([0.04])
    assert latencies["authenticate"].tolist() == []


def test_renewal_registers_again_and_needs_a_later_certificate() -> None:
    ctx, carriers = _context()
    flow = RenewalFlow(ctx, Flow("renewal", think_time=Distribution("fixed", value=1.0)))
    for row in (0, 1):
        flow.arrive(np.array([row], dtype=np.int64), 0.0)
        flow.on_mt(row, _mt(int(ctx.msisdns[row]), f"REG-RESP?v=3;r={request_id(row, 0)};n=+1;s=aa"), 0.1)
    flow.tick(1.2)
    flow.authenticated(0, _certificate(1000.0), "", 1.3)
    flow.authenticated(1, _certificate(1000.0), "", 1.3)
    assert flow.state[0] == Step.RENEW_WAIT
    assert flow.counters.completed == 0
    flow.tick(2.4)  # think over: round 1 starts with a new request id and the same device token
    assert carriers.sent[-1][3] == f"REG-REQ?v=3;t={push_token(ctx.seed, 1)};r={request_id(1, 1)};"
    # A late REG-RESP of round 0 does not answer round 1.
    flow.on_mt(0, _mt(int(ctx.msisdns[0]), f"REG-RESP?v=3;r={request_id(0, 0)};n=+1;s=aa"), 2.5)
    assert flow.state[0] == Step.REG_SENT
    for row in (0, 1):
        flow.on_mt(row, _mt(int(ctx.msisdns[row]), f"REG-RESP?v=3;r={request_id(row, 1)};n=+1;s=bb"), 2.5)
    flow.tick(3.6)
    flow.authenticated(0, _certificate(2000.0), "", 3.7)
    flow.authenticated(1, _certificate(1000.0), "", 3.7)  # the same expiry: nothing was renewed
    assert flow.state[0] == Step.DONE
    assert flow.counters.completed == 1
    assert flow.counters.failures == {"not_renewed": 1}
    assert flow.latencies()["renewal"].tolist() == pytest.approx([3.7 - 2.4])
    # REG-REQ to REG-RESP is measured within the renewal round, not from round 0's answer.
    assert flow.latencies()["reg_resp"].tolist() == pytest.approx([0.1, 0.1])


def test_mo_mt_waits_its_think_time_then_needs_a_reply_from_the_gateway() -> None:
    ctx, carriers = _context()
    flow = MoMtFlow(ctx, Flow("mo_mt", think_time=Distribution("fixed", value=1.0)))
    flow.arrive(np.array([0, 1, 2], dtype=np.int64), 0.0)
    assert not carriers.sent
    flow.tick(1.1)
    assert [t for *_, t in carriers.sent] == ["HELP"] * 3
    gateway = ctx.carriers[int(ctx.carrier_of[0])].carrier.gateway
    flow.on_mt(0, _mt(int(ctx.msisdns[0]), "carrier help text", source="999"), 1.2)  # not from the gateway
    flow.on_mt(1, _mt(int(ctx.msisdns[1]), "REG-RESP?v=3;r=1;n=+1;s=aa",
                      source=ctx.carriers[int(ctx.carrier_of[1])].carrier.gateway), 1.2)  # not an answer to HELP
    flow.on_mt(0, _mt(int(ctx.msisdns[0]), "Identity service: reply STOP to opt out", source=gateway), 1.3)
    assert flow.counters.completed == 1
    flow.expire(1.1 + flow.reply_timeout + 1)
    assert flow.counters.failures == {"no_reply": 2}
    assert flow.latencies()["mo_mt"].tolist() == pytest.approx([0.2])


@pytest.mark.parametrize("seed", range(5))
def test_timeouts_from_the_queue_of_reg_reqs_match_a_scan_of_the_columns(seed: int) -> None:
    # quiet_until and expire take the oldest unanswered REG-REQ from a queue in the order sent instead of scanning
    # every phone's columns (375 us a call at a million phones); they must find what the scan finds.
    rng = np.random.default_rng(seed)
    ctx, _ = _context(60)
    flow = ActivationFlow(ctx, SPEC, reg_timeout=5.0)
    idle = list(range(60))
    now = 0.0
    for _ in range(200):
        now += float(rng.exponential(0.7))
        action = rng.integers(3)
        if action == 0 and idle:
            rows = [idle.pop(int(rng.integers(len(idle)))) for _ in range(min(len(idle), int(rng.integers(1, 4))))]
            flow.arrive(np.array(rows, dtype=np.int64), now)
        elif action == 1:
            waiting = np.nonzero(flow.state == Step.REG_SENT)[0]
            if len(waiting):
                row = int(waiting[rng.integers(len(waiting))])
                rid = request_id(int(ctx.index[row]), int(flow.round[row]))
                flow.on_mt(row, _mt(int(ctx.msisdns[row]), f"REG-RESP?v=3;r={rid};s=proof"), now)
        else:
            waiting = flow.state == Step.REG_SENT
            late = int(np.count_nonzero(waiting & (flow.t_round < now - flow.reg_timeout)))
            before = flow.counters.failures.get("no_reg_resp", 0)
            flow.expire(now)
            assert flow.counters.failures.get("no_reg_resp", 0) - before == late
            assert not np.any((flow.state == Step.REG_SENT) & (flow.t_round < now - flow.reg_timeout))
        flow._schedule_thinking()
        waiting = flow.state == Step.REG_SENT
        expected = min(flow.due.next_time(),
                       float(flow.t_round[waiting].min()) + flow.reg_timeout if waiting.any() else np.inf)
        if flow.due.next_time() - now >= 0.05:
            assert flow.quiet_until(now) == expected


@pytest.mark.parametrize("seed", range(3))
def test_mo_mt_timeouts_from_the_queue_of_mos_match_a_scan_of_the_columns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ctx, _ = _context(60)
    flow = MoMtFlow(ctx, Flow("mo_mt", think_time=Distribution("fixed", value=0.5)), reply_timeout=5.0)
    idle = list(range(60))
    now = 0.0
    for _ in range(200):
        now += float(rng.exponential(0.7))
        action = rng.integers(3)
        if action == 0 and idle:
            flow.arrive(np.array([idle.pop(int(rng.integers(len(idle))))], dtype=np.int64), now)
        elif action == 1:
            waiting = np.nonzero(flow.state == 2)[0]  # sent, waiting for the reply
            if len(waiting):
                row = int(waiting[rng.integers(len(waiting))])
                gateway = ctx.carriers[int(ctx.carrier_of[row])].carrier.gateway
                flow.on_mt(row, _mt(int(ctx.msisdns[row]), "help text", source=gateway), now)
        else:
            waiting = flow.state == 2
            late = int(np.count_nonzero(waiting & (flow.t_sent < now - flow.reply_timeout)))
            before = flow.counters.failures.get("no_reply", 0)
            flow.expire(now)
            assert flow.counters.failures.get("no_reply", 0) - before == late
        flow.tick(now)
        waiting = flow.state == 2
        expected = min(flow.due.next_time(),
                       float(flow.t_sent[waiting].min()) + flow.reply_timeout if waiting.any() else np.inf)
        if flow.due.next_time() - now >= 0.05:
            assert flow.quiet_until(now) == expected
