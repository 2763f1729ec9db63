"""Velocity limits: bursts, refill, atomic refusals, prefix pumping blocks, bounded memory."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_core.limits import Kind, Rate, VelocityLimiter, VelocityLimits
from identity_core.refusals import Refusal, RefusalReason

NUMBER = "+447700900123"
CARRIER = "acme"
T0 = 1000.0
#: Limits wide enough never to interfere, so each test switches on only what it is about.
OPEN = VelocityLimits(
    reg_per_number=None,
    reg_per_prefix=None,
    reg_per_carrier=None,
    auth_per_number=None,
    auth_per_prefix=None,
    auth_per_carrier=None,
    pump_floor=1e9,
)


def limits(**changes: object) -> VelocityLimits:
    return dataclasses.replace(OPEN, **changes)  # type: ignore[arg-type]


def passes(limiter: VelocityLimiter, kind: Kind, number: str, now: float, carrier: str = CARRIER) -> bool:
    result = limiter.check(kind, number, carrier, now)
    assert result is None or isinstance(result, Refusal)
    return result is None


def reason(limiter: VelocityLimiter, kind: Kind, number: str, now: float, carrier: str = CARRIER) -> RefusalReason:
    result = limiter.check(kind, number, carrier, now)
    assert isinstance(result, Refusal)
    return result.reason


# -------------------------------------------------------------------------------------------- token buckets


def test_burst_then_refused_with_retry_after() -> None:
    limiter = VelocityLimiter(limits(reg_per_number=Rate(0.5, 3)))
    assert [passes(limiter, "reg", NUMBER, T0) for _ in range(4)] == [True, True, True, False]
    refusal = limiter.check("reg", NUMBER, CARRIER, T0)
    assert isinstance(refusal, Refusal)
    assert refusal.reason is RefusalReason.RATE_LIMITED
    assert refusal.retry_after == pytest.approx(2.0)
    assert refusal.retry_after_header() == "2"
    assert "per number" in refusal.detail
    # Another number has its own bucket.
    assert passes(limiter, "reg", "+447700900124", T0)


def test_retry_after_is_at_most_a_day() -> None:
    # It becomes the HTTP Retry-After header: 1 / 1e-300 s was a 301-digit number there.
    limiter = VelocityLimiter(limits(reg_per_number=Rate(1e-300, 1)))
    assert passes(limiter, "reg", NUMBER, T0)
    refusal = limiter.check("reg", NUMBER, CARRIER, T0)
    assert isinstance(refusal, Refusal)
    assert refusal.retry_after == 86_400.0
    assert refusal.retry_after_header() == "86400"
    blocking = VelocityLimiter(limits(pump_window=10.0, pump_floor=0.2, pump_block=1e12))
    outcomes = [blocking.check("reg", NUMBER, CARRIER, T0) for _ in range(4)]
    assert [o.retry_after_header() for o in outcomes if o is not None] == ["86400", "86400"]


def test_refill_over_time() -> None:
    limiter = VelocityLimiter(limits(reg_per_number=Rate(0.5, 2)))
    assert passes(limiter, "reg", NUMBER, T0)
    assert passes(limiter, "reg", NUMBER, T0)
    assert not passes(limiter, "reg", NUMBER, T0 + 1.9)
    assert passes(limiter, "reg", NUMBER, T0 + 2.0)  # one token after 1/rate seconds
    assert not passes(limiter, "reg", NUMBER, T0 + 2.0)
    # A long idle period refills to the burst, never beyond it.
    assert [passes(limiter, "reg", NUMBER, T0 + 1000) for _ in range(3)] == [True, True, False]


def test_zero_rate_never_refills() -> None:
    limiter = VelocityLimiter(limits(auth_per_number=Rate(0, 1)))
    assert passes(limiter, "auth", NUMBER, T0)
    refusal = limiter.check("auth", NUMBER, CARRIER, T0 + 10**6)
    assert isinstance(refusal, Refusal)
    assert refusal.retry_after is None
    assert refusal.retry_after_header() is None


def test_clock_stepping_back_mints_no_tokens() -> None:
    limiter = VelocityLimiter(limits(reg_per_number=Rate(1, 1)))
    assert passes(limiter, "reg", NUMBER, T0)
    assert not passes(limiter, "reg", NUMBER, T0 - 500)
    assert not passes(limiter, "reg", NUMBER, T0 + 0.5)
    assert passes(limiter, "reg", NUMBER, T0 + 1.0)


def test_reg_and_auth_are_limited_separately() -> None:
    limiter = VelocityLimiter(limits(reg_per_number=Rate(0.1, 1), auth_per_number=Rate(0.1, 2)))
    assert passes(limiter, "reg", NUMBER, T0)
    assert not passes(limiter, "reg", NUMBER, T0)
    assert passes(limiter, "auth", NUMBER, T0)
    assert passes(limiter, "auth", NUMBER, T0)
    assert not passes(limiter, "auth", NUMBER, T0)


def test_prefix_bucket_is_shared_by_the_numbers_of_a_prefix() -> None:
    limiter = VelocityLimiter(limits(reg_per_prefix=Rate(1, 3), prefix_digits=7))
    same_prefix = ["+4477009001", "+4477009002", "+4477009003", "+4477009004"]
    assert [passes(limiter, "reg", n, T0) for n in same_prefix] == [True, True, True, False]
    assert limiter.prefix_of("+4477009004") == "4477009"
    refusal = limiter.check("reg", "+4477009005", CARRIER, T0)
    assert isinstance(refusal, Refusal)
    assert "per prefix" in refusal.detail
    assert passes(limiter, "reg", "+4477008001", T0)  # the neighbouring range is not affected


def test_carrier_bucket_is_shared_by_everyone_on_the_carrier() -> None:
    limiter = VelocityLimiter(limits(auth_per_carrier=Rate(1, 2)))
    assert passes(limiter, "auth", "+15550000001", T0)
    assert passes(limiter, "auth", "+4915550000002", T0)
    assert reason(limiter, "auth", "+33600000003", T0) is RefusalReason.RATE_LIMITED
    assert passes(limiter, "auth", "+33600000003", T0, carrier="other")


def test_a_refusal_consumes_nothing_from_the_other_buckets() -> None:
    limiter = VelocityLimiter(limits(reg_per_number=Rate(0.01, 2), reg_per_carrier=Rate(0.01, 5)))
    assert passes(limiter, "reg", "+1555000001", T0)
    assert passes(limiter, "reg", "+1555000001", T0)
    for _ in range(20):  # a hammering number is refused at the number level ...
        assert not passes(limiter, "reg", "+1555000001", T0)
    # ... and has not eaten the carrier's remaining 3 tokens.
    assert [passes(limiter, "reg", f"+155500001{i}", T0) for i in range(4)] == [True, True, True, False]


def test_a_refusal_further_down_consumes_nothing_from_the_buckets_before_it() -> None:
    limiter = VelocityLimiter(limits(reg_per_number=Rate(0.001, 2), reg_per_carrier=Rate(1, 1)))
    assert passes(limiter, "reg", NUMBER, T0)
    for _ in range(5):  # refused by the carrier's bucket, which is checked after the number's ...
        assert not passes(limiter, "reg", NUMBER, T0)
    # ... so the number still has its second token once the carrier refills.
    assert passes(limiter, "reg", NUMBER, T0 + 1)


# --------------------------------------------------------------------------------------------- prefix pumping


def test_pumping_prefix_is_blocked_and_then_unblocked() -> None:
    limiter = VelocityLimiter(limits(pump_window=10.0, pump_floor=1.0, pump_block=60.0, prefix_digits=6))
    numbers = [f"+4477009{i:05d}" for i in range(11)]
    assert all(passes(limiter, "reg", n, T0) for n in numbers[:10])
    refusal = limiter.check("reg", numbers[10], CARRIER, T0)
    assert isinstance(refusal, Refusal)
    assert refusal.reason is RefusalReason.PREFIX_BLOCKED
    assert refusal.retry_after == pytest.approx(60.0)
    assert limiter.blocked_prefixes(T0) == {"447700": T0 + 60.0}
    assert limiter.is_blocked("447700", T0 + 59.9)
    assert limiter.blocks_started == 1

    assert reason(limiter, "reg", numbers[0], T0 + 30) is RefusalReason.PREFIX_BLOCKED
    assert passes(limiter, "reg", "+4477019000", T0 + 30)  # another prefix
    assert passes(limiter, "auth", numbers[0], T0 + 30)  # authenticate sends no SMS and is not blocked

    assert passes(limiter, "reg", numbers[0], T0 + 60)
    assert not limiter.is_blocked("447700", T0 + 60)
    assert limiter.blocked_prefixes(T0 + 60) == {}


def test_traffic_below_the_threshold_is_never_blocked() -> None:
    limiter = VelocityLimiter(limits(pump_window=10.0, pump_floor=1.0, pump_block=60.0))
    # 0.5 per second: at most ~5 per window, forever.
    for step in range(2000):
        assert passes(limiter, "reg", NUMBER, T0 + 2.0 * step)
    assert limiter.blocks_started == 0


def test_a_burst_across_a_window_boundary_is_caught() -> None:
    limiter = VelocityLimiter(limits(pump_window=10.0, pump_floor=1.0, pump_block=60.0))
    # Eight at the very end of one fixed window and eight at the start of the next: a fixed-window counter
    # would see 8 and 8 and let both through; the sliding estimate sees about 16.
    assert all(passes(limiter, "reg", NUMBER, 1009.9) for _ in range(8))
    results = [passes(limiter, "reg", NUMBER, 1010.1) for _ in range(8)]
    assert False in results
    assert limiter.is_blocked(limiter.prefix_of(NUMBER), 1010.1)


def test_attempts_the_prefix_or_carrier_bucket_refuses_still_count_as_pumping() -> None:
    # Many numbers of one prefix: the prefix (or carrier) bucket being empty is what a spread-out pump looks like.
    for scope in ("reg_per_prefix", "reg_per_carrier"):
        limiter = VelocityLimiter(limits(**{scope: Rate(0.001, 1)}, pump_window=10.0, pump_floor=0.5, pump_block=60.0))
        outcomes = [limiter.check("reg", f"+44770090{i:04d}", CARRIER, T0) for i in range(7)]
        assert outcomes[0] is None
        assert [o.reason for o in outcomes[1:] if o is not None] == [RefusalReason.RATE_LIMITED] * 4 + [
            RefusalReason.PREFIX_BLOCKED
        ] * 2


def test_one_number_refused_by_its_own_bucket_cannot_block_its_prefix() -> None:
    # The review's case, with the defaults: one SIM sending 110 MO/s for 10 s gets its burst (3 SMS) and is then
    # refused by its own bucket; were those refusals counted, its 7-digit prefix (100k subscribers) was blocked.
    limiter = VelocityLimiter(VelocityLimits())
    t0 = 1_700_000_000.0
    reasons = {limiter.check("reg", "+447700900666", CARRIER, t0 + i / 110) for i in range(1100)}
    assert RefusalReason.PREFIX_BLOCKED not in {r.reason for r in reasons if r is not None}
    assert limiter.check("reg", "+447700912345", CARRIER, t0 + 11) is None
    assert limiter.blocks_started == 0
    # Many numbers of the prefix at the same rate still are a pump.
    blocked = [limiter.check("reg", f"+4477009{i:05d}", CARRIER, t0 + 20 + i / 110) for i in range(1100)]
    assert any(r is not None and r.reason is RefusalReason.PREFIX_BLOCKED for r in blocked)


def drive(limiter: VelocityLimiter, prefix: str, start: float, seconds: float, rate: float) -> tuple[int, int]:
    """Send REG-REQs from distinct numbers of ``prefix`` (7 digits) at ``rate``/s: (accepted, blocked)."""
    accepted = blocked = 0
    for i in range(int(seconds * rate)):
        result = limiter.check("reg", f"+{prefix}{i % 100_000:05d}", CARRIER, start + i / rate)
        if result is None:
            accepted += 1
        elif result.reason is RefusalReason.PREFIX_BLOCKED:
            blocked += 1
    return accepted, blocked


def test_defaults_block_a_cold_pump_below_the_per_prefix_limit() -> None:
    # The review's case: 499/s for two minutes from a quiet range. The per-prefix bucket (500/s) lets all of it
    # through, so only the pump block can stop it -- and it must, long before the two minutes are up.
    limiter = VelocityLimiter(VelocityLimits())
    accepted, blocked = drive(limiter, "4477009", T0, 120.0, 499.0)
    assert limiter.blocks_started == 1
    assert accepted <= 1_001  # the default floor: 100/s over the 10 s window
    assert blocked == 499 * 120 - accepted


def test_defaults_block_a_sudden_jump_but_not_the_prefix_normal_rate() -> None:
    limiter = VelocityLimiter(VelocityLimits())
    # An hour at this prefix's normal rate, 60/s: never blocked.
    accepted, blocked = drive(limiter, "4477009", T0, 3600.0, 60.0)
    assert (accepted, blocked) == (216_000, 0)
    # Then it pumps at 400/s, well within the per-prefix bucket: blocked within seconds, and for pump_block.
    start = T0 + 3600.0
    accepted, blocked = drive(limiter, "4477009", start, 10.0, 400.0)
    assert limiter.blocks_started == 1
    # The threshold is 3 x baseline (about 38/s: an hour is one time constant) + 100/s, over 10 s, less the
    # previous window's share: about 1,800 attempts, all of which the per-prefix bucket would have let through.
    assert accepted < 2_500
    assert blocked == 4_000 - accepted
    assert limiter.is_blocked("4477009", start + 10.0 + 250.0)
    assert not limiter.is_blocked("4477009", start + 10.0 + 300.0)


def test_defaults_learn_a_prefix_whose_traffic_grows_gradually() -> None:
    limiter = VelocityLimiter(VelocityLimits())
    # From 0 to 200/s over an hour, one minute at a time, then an hour at 200/s: twice the floor, never blocked.
    now = T0
    for minute in range(60):
        rate = 200.0 * (minute + 1) / 60
        assert drive(limiter, "4477009", now, 60.0, rate)[1] == 0
        now += 60.0
    assert drive(limiter, "4477009", now, 3600.0, 200.0)[1] == 0
    assert limiter.blocks_started == 0
    # The same 200/s from a range with no history is a pump.
    drive(limiter, "4477010", now, 10.0, 200.0)
    assert limiter.is_blocked("4477010", now + 10.0)


def test_a_block_does_not_teach_the_baseline_the_pump() -> None:
    limiter = VelocityLimiter(limits(pump_window=10.0, pump_floor=1.0, pump_block=60.0))
    drive(limiter, "4477009", T0, 5.0, 100.0)
    assert limiter.blocks_started == 1
    # Back at 0.5/s after the block: the pump's window was not folded into the baseline, so a second pump is
    # caught as early as the first (after floor x window = 10 attempts).
    drive(limiter, "4477009", T0 + 70.0, 100.0, 0.5)
    assert limiter.blocks_started == 1
    accepted, _ = drive(limiter, "4477009", T0 + 200.0, 5.0, 100.0)
    assert limiter.blocks_started == 2
    assert accepted <= 13


# -------------------------------------------------------------------------------------------------- memory


def test_memory_is_capped_under_a_flood_of_distinct_numbers() -> None:
    limiter = VelocityLimiter(
        limits(reg_per_number=Rate(0.001, 2), reg_per_prefix=Rate(0.001, 2), max_entries=100, prefix_digits=11)
    )
    for i in range(10_000):
        limiter.check("reg", f"+1555{i:07d}", CARRIER, T0 + i * 1e-3)
    counts = limiter.entry_counts()
    assert counts["reg_number"] <= 100
    assert counts["reg_prefix"] <= 100
    assert counts["pump_counters"] <= 100
    assert limiter.lossy_evictions > 0


def test_idle_buckets_are_evicted_without_losing_anything() -> None:
    limiter = VelocityLimiter(limits(reg_per_number=Rate(1, 2), reg_per_carrier=Rate(10**6, 10**6)))
    for i in range(1000):
        assert passes(limiter, "reg", f"+1555{i:07d}", T0)
    assert limiter.entry_counts()["reg_number"] == 1000
    # Later traffic from other numbers sweeps away the buckets that have refilled, at two per write.
    for i in range(600):
        assert passes(limiter, "reg", f"+1666{i:07d}", T0 + 100)
    assert limiter.entry_counts()["reg_number"] == 600
    assert limiter.lossy_evictions == 0
    # An evicted number starts again with a full burst, which is what it had anyway.
    assert [passes(limiter, "reg", "+15550000000", T0 + 100) for _ in range(3)] == [True, True, False]


def test_pump_counters_of_random_prefixes_are_swept_without_loss() -> None:
    limiter = VelocityLimiter(limits(prefix_digits=11, pump_window=10.0, pump_floor=100.0))
    # 100 distinct prefixes a second for 200 s, one attempt each: only the last few windows' stay.
    for i in range(20_000):
        limiter.check("reg", f"+1555{i:07d}", CARRIER, T0 + i / 100)
    assert limiter.entry_counts()["pump_counters"] <= 3 * 10 * 100
    assert limiter.lossy_evictions == 0


def test_a_quiet_prefix_with_history_does_not_hold_up_the_sweep() -> None:
    # The review's case: a prefix sends 5/s for half an hour (under the floor), then falls silent. Its baseline
    # takes hours to decay below the negligible level; kept at the head of the table it stopped the sweep, and
    # every one-shot prefix after it piled up toward the cap.
    limiter = VelocityLimiter(limits(pump_window=10.0, pump_floor=100.0))
    for i in range(5 * 1800):
        limiter.check("reg", f"+4477009{i % 10_000:04d}", CARRIER, T0 + i / 5)
    start = T0 + 1800
    for i in range(6000):  # then 20 one-shot prefixes a second for 300 s
        limiter.check("reg", f"+1{i:06d}0000", CARRIER, start + i / 20)
    counters = limiter.entry_counts()["pump_counters"]
    assert counters <= 3 * 10 * 20 + 1  # about two windows' worth, and the prefix with history
    assert limiter.lossy_evictions == 0
    # The quiet prefix is still remembered: its baseline still raises its threshold.
    assert "4477009" in limiter._counters


class ReferenceBuckets:
    """The specification, naively: one bucket per key, kept forever."""

    def __init__(self, limits: VelocityLimits) -> None:
        self.limits = limits
        self.state: dict[tuple[str, str, str], tuple[float, float]] = {}
        self.latest = float("-inf")

    def check(self, kind: Kind, number: str, carrier: str, now: float) -> bool:
        now = self.latest = max(now, self.latest)  # a clock stepping back stands still
        keys = [("number", number), ("prefix", number[1:][: self.limits.prefix_digits]), ("carrier", carrier)]
        levels = []
        for scope, key in keys:
            rate = self.limits.rate(kind, scope)  # type: ignore[arg-type]
            if rate is None:
                continue
            tokens, stamp = self.state.get((kind, scope, key), (rate.burst, now))
            if now > stamp:
                tokens, stamp = min(rate.burst, tokens + (now - stamp) * rate.per_second), now
            if tokens < 1:
                return False
            levels.append(((kind, scope, key), tokens, stamp))
        for state_key, tokens, stamp in levels:
            self.state[state_key] = (tokens - 1, stamp)
        return True


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["reg", "auth"]),
            st.sampled_from(["+15550001", "+15550002", "+15560003", "+447700900"]),
            st.sampled_from(["a", "b"]),
            st.floats(-1.0, 5.0),
        ),
        max_size=200,
    )
)
def test_lossless_eviction_never_changes_a_decision(requests: list[tuple[Kind, str, str, float]]) -> None:
    config = limits(
        reg_per_number=Rate(0.5, 2),
        reg_per_prefix=Rate(1.0, 3),
        reg_per_carrier=Rate(2.0, 4),
        auth_per_number=Rate(0.25, 1),
        auth_per_prefix=Rate(2.0, 2),
        auth_per_carrier=Rate(3.0, 5),
        prefix_digits=4,
    )
    limiter = VelocityLimiter(config)
    reference = ReferenceBuckets(config)
    now = T0
    for kind, number, carrier, step in requests:
        now += step  # steps may be negative: the clock may step back
        assert passes(limiter, kind, number, now, carrier) == reference.check(kind, number, carrier, now)
    assert limiter.lossy_evictions == 0


# -------------------------------------------------------------------------------------------- configuration


def test_from_mapping_takes_the_config_file_shape() -> None:
    config = VelocityLimits.from_mapping(
        {
            "reg_per_number": (0.2, 3.0),
            "reg_per_prefix": [500.0, 2000.0],
            "auth_per_carrier": None,
            "prefix_digits": 6,
            "pump_window": 10.0,
            "pump_baseline": 1800.0,
            "pump_factor": 4.0,
            "pump_floor": 50.0,
            "pump_block": 300.0,
        }
    )
    assert config.reg_per_number == Rate(0.2, 3.0)
    assert config.reg_per_prefix == Rate(500.0, 2000.0)
    assert config.auth_per_carrier is None
    assert config.prefix_digits == 6
    assert (config.pump_baseline, config.pump_factor, config.pump_floor_rate) == (1800.0, 4.0, 50.0)
    with pytest.raises(ValueError, match="unknown limit"):
        VelocityLimits.from_mapping({"reg_per_numbr": (1, 1)})
    with pytest.raises(ValueError, match="per_second, burst"):
        VelocityLimits.from_mapping({"reg_per_number": (1, 2, 3)})


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"prefix_digits": 0}, "prefix_digits"),
        ({"prefix_digits": 16}, "prefix_digits"),
        ({"pump_window": 0.0}, "pump_window"),
        ({"pump_baseline": 5.0}, "pump_baseline"),
        ({"pump_baseline": float("inf")}, "pump_baseline"),
        ({"pump_factor": 0.5}, "pump_factor"),
        ({"pump_floor": 0.0}, "pump_floor"),
        ({"pump_floor": float("nan")}, "pump_floor"),
        ({"pump_block": -1.0}, "pump_block"),
        ({"max_entries": 0}, "max_entries"),
        # floor x window below 2 blocked every prefix on its first REG-REQ (and again after each block).
        ({"pump_floor": 0.05}, "pump_floor x pump_window must be at least 2"),
        ({"pump_floor": 1.0, "pump_window": 0.005, "pump_baseline": 60.0}, "pump_floor x pump_window"),
        ({"pump_floor": None, "reg_per_prefix": Rate(2.0, 10.0), "pump_window": 1.0, "pump_baseline": 60.0},
         r"pump_floor \(unset: a fifth of reg_per_prefix\) x pump_window"),
    ],
)
def test_invalid_limits_are_refused(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        limits(**changes)


def test_invalid_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        Rate(1.0, 0.5)
    with pytest.raises(ValueError, match="per_second"):
        Rate(-1.0, 1)
    with pytest.raises(ValueError, match="per_second"):
        Rate(float("inf"), 1)


@settings(max_examples=500)
@given(st.sampled_from(["reg", "auth"]), st.text(max_size=40), st.text(max_size=20), st.floats(0, 1e9))
def test_check_never_raises_for_any_strings(kind: Kind, number: str, carrier: str, now: float) -> None:
    limiter = VelocityLimiter(VelocityLimits(pump_floor=0.3))
    for _ in range(5):
        result = limiter.check(kind, number, carrier, now)
        assert result is None or result.reason in {RefusalReason.RATE_LIMITED, RefusalReason.PREFIX_BLOCKED}


def test_an_unknown_kind_is_a_bug_not_a_free_pass() -> None:
    limiter = VelocityLimiter(VelocityLimits())
    with pytest.raises(ValueError, match="kind"):
        limiter.check("register", NUMBER, CARRIER, T0)  # type: ignore[arg-type]


def test_scopes_limit_which_buckets_are_looked_at_and_charged() -> None:
    limiter = VelocityLimiter(limits(auth_per_number=Rate(0.0, 1.0), auth_per_carrier=Rate(0.0, 1.0)))
    number = "+33600000077"
    assert limiter.check("auth", number, CARRIER, T0, scopes={"number", "prefix"}) is None
    # The number's bucket is spent, the carrier's untouched: a carrier-only check still passes, once.
    assert limiter.check("auth", number, CARRIER, T0, scopes={"carrier"}) is None
    refused = limiter.check("auth", number, CARRIER, T0, scopes={"carrier"})
    assert refused is not None
    assert "carrier" in refused.detail
    refused = limiter.check("auth", number, "another", T0, scopes={"number"})
    assert refused is not None
    assert "number" in refused.detail
    assert limiter.check("auth", number, "another", T0, scopes={"carrier"}) is None
