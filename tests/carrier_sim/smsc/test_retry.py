"""The back-off shared by refused receipts and MO."""

from __future__ import annotations

from carrier_sim.smpp.constants import CommandStatus as S
from carrier_sim.smsc.retry import DELIVERY_RETRY, RetryCounts, RetryPolicy


def test_delays_double_up_to_the_longest_and_stop_after_the_attempts() -> None:
    delays = [DELIVERY_RETRY.delay(S.ESME_RTHROTTLED, n) for n in range(1, 10)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, None]


def test_a_permanent_status_is_never_retried() -> None:
    assert DELIVERY_RETRY.delay(S.ESME_RX_P_APPN, 1) is None
    assert RetryPolicy(retryable=frozenset({S.ESME_RX_P_APPN})).delay(S.ESME_RX_P_APPN, 1) == 1.0


def test_counts_are_held_only_while_retrying() -> None:
    counts: RetryCounts[str] = RetryCounts(RetryPolicy(attempts=2))
    assert counts.refused("a", S.ESME_RMSGQFUL) == 1.0
    assert counts.refused("a", S.ESME_RMSGQFUL) == 2.0
    assert counts.refused("a", S.ESME_RMSGQFUL) is None
    assert not counts  # given up: forgotten
    assert counts.refused("b", S.ESME_RSYSERR) == 1.0
    counts.settled("b")
    counts.settled("never seen")
    assert not counts
