"""The back-off both ESME gateways take their pauses from: pinned to the schedule identity-core's gateway kept
before it moved here, so that neither gateway's pauses change unnoticed."""

from __future__ import annotations

import random

from identity_core.backoff import ThrottlePause, jittered, resend_delay


def test_resending_one_mt_backs_off_exponentially_with_seeded_jitter() -> None:
    def delays(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [resend_delay(n, 0.05, 1.0, rng) for n in range(10)]
    first = delays(3)
    assert first == delays(3)  # seeded: the same run, the same pauses
    for n, delay in enumerate(first):
        nominal = min(1.0, 0.05 * 2**n)
        assert nominal <= delay <= min(1.0, nominal * 1.5)
    assert first[-1] == 1.0  # bounded by throttle_max
    assert resend_delay(10_000, 0.05, 1.0, random.Random()) == 1.0  # a huge count neither overflows nor passes it


def test_the_resend_schedule_is_pinned() -> None:
    # CarrierGateway._resend_delay's values for this seed before the policy moved to identity_core.backoff.
    rng = random.Random(3)
    assert [resend_delay(n, 0.05, 1.0, rng) for n in range(10)] == [
        0.05594911567729728, 0.1272114612647976, 0.23699551665480795, 0.5207840077192388,
        1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
    ]


def test_throttle_pauses_never_exceed_throttle_max() -> None:
    # The jitter (up to 1.5x) took pauses to 7.5 s with throttle_max 5 s.
    pause, rng = ThrottlePause(0.05, 5.0), random.Random(1)
    pauses = []
    for now in range(20):
        pause.throttled(now, now, rng)
        pauses.append(pause.until - now)
    assert max(pauses) <= 5.0
    assert pauses[0] >= 0.05
    assert jittered(30.0, random.Random(2), cap=30.0) == 30.0


def test_the_throttle_pause_schedule_is_pinned() -> None:
    # (delay, until) after each event, as CarrierGateway's _throttled and _accepted left them before the policy
    # moved to identity_core.backoff, on a clock the test sets.
    pause, rng = ThrottlePause(0.05, 1.0), random.Random(11)
    trace = []

    def throttled(sent_at: float, now: float) -> None:
        pause.throttled(sent_at, now, rng)
        trace.append((pause.delay, pause.until))

    def accepted(sent_at: float) -> None:
        pause.accepted(sent_at)
        trace.append((pause.delay, pause.until))

    throttled(0.0, 0.0)
    throttled(-0.01, 0.01)  # sent before that pause began: already answered by it, nothing changes
    for _ in range(6):  # each sent as the last pause ended: the pause doubles, up to throttle_max
        throttled(pause.until, pause.until + 0.001)
    accepted(pause.until - 0.5)  # sent during the pause: the SMSC has not shown it keeps up yet
    end = pause.until
    for second in range(6):  # accepted after it: each halves the next pause, to none below throttle_initial
        accepted(end + second)
    throttled(end + 10, end + 10)  # throttled afresh: from throttle_initial
    assert trace == [
        (0.05, 0.061309488837745466),
        (0.05, 0.061309488837745466),
        (0.1, 0.19029810814177028),
        (0.2, 0.4837191665441432),
        (0.4, 0.9778491805640979),
        (0.8, 1.9788491805640978),
        (1.0, 2.9798491805640976),
        (1.0, 3.9808491805640975),
        (1.0, 3.9808491805640975),
        (0.5, 3.9808491805640975),
        (0.25, 3.9808491805640975),
        (0.125, 3.9808491805640975),
        (0.0625, 3.9808491805640975),
        (0.0, 3.9808491805640975),
        (0.0, 3.9808491805640975),
        (0.05, 14.043646896540142),
    ]
