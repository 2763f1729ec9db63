"""RecentRequests: a repeat of a REG-REQ within the window is issued at the first issue time, and memory stays
bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_core.proofs import ProofSigner
from identity_core.recent_requests import RecentRequests

T0 = 1_700_000_000.0
NUMBER = "+447700900123"
TOKEN = "ab" * 32


def test_a_repeat_within_the_window_is_issued_at_the_first_time() -> None:
    recent = RecentRequests(window=60.0)
    assert recent.issue_time(NUMBER, TOKEN, 1, T0) == T0
    assert recent.issue_time(NUMBER, TOKEN, 1, T0 + 2) == T0
    assert recent.issue_time(NUMBER, TOKEN, 1, T0 + 59.9) == T0
    assert recent.issue_time(NUMBER, TOKEN, 1, T0 + 60) == T0 + 60  # past the window: a fresh issue...
    assert recent.issue_time(NUMBER, TOKEN, 1, T0 + 61) == T0 + 60  # ...which is the first from then on


def test_another_request_number_or_token_is_another_request() -> None:
    recent = RecentRequests()
    assert recent.issue_time(NUMBER, TOKEN, 1, T0) == T0
    assert recent.issue_time(NUMBER, TOKEN, 2, T0 + 1) == T0 + 1
    assert recent.issue_time("+447700900124", TOKEN, 1, T0 + 2) == T0 + 2
    assert recent.issue_time(NUMBER, "cd" * 32, 1, T0 + 3) == T0 + 3


def test_the_same_issue_time_makes_the_same_proof() -> None:
    signer, recent = ProofSigner(b"k" * 32, 600.0), RecentRequests()
    issued = [signer.issue(NUMBER, TOKEN, 1, recent.issue_time(NUMBER, TOKEN, 1, now)) for now in (T0 + 0.9, T0 + 2.9)]
    assert issued[0] == issued[1]


def test_a_clock_stepped_back_gets_a_fresh_issue() -> None:
    recent = RecentRequests()
    assert recent.issue_time(NUMBER, TOKEN, 1, T0) == T0
    assert recent.issue_time(NUMBER, TOKEN, 1, T0 - 5) == T0 - 5


def test_entries_leave_once_out_of_the_window_and_at_the_cap() -> None:
    recent = RecentRequests(window=10.0, max_entries=3)
    for i in range(3):
        recent.issue_time(NUMBER, TOKEN, i + 1, T0 + i)
    assert len(recent) == 3
    recent.issue_time(NUMBER, TOKEN, 4, T0 + 3)  # at the cap the oldest goes
    assert len(recent) == 3
    assert recent.issue_time(NUMBER, TOKEN, 1, T0 + 4) == T0 + 4  # forgotten: a fresh issue
    recent.issue_time(NUMBER, TOKEN, 9, T0 + 100)  # every other entry is out of the window
    assert len(recent) == 1


@pytest.mark.parametrize(("window", "max_entries"), [(-1.0, 10), (float("nan"), 10), (1.0, 0)])
def test_nonsense_settings_are_refused(window: float, max_entries: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        RecentRequests(window, max_entries)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.floats(0, 5)), max_size=60))
def test_a_repeat_gets_the_first_time_exactly_while_within_the_window(steps: list[tuple[int, float]]) -> None:
    recent, now, first = RecentRequests(window=10.0), T0, {}
    for request_id, step in steps:
        now += step
        expected = first[request_id] if request_id in first and now - first[request_id] < 10.0 else now
        assert recent.issue_time(NUMBER, TOKEN, request_id, now) == expected
        first[request_id] = expected
