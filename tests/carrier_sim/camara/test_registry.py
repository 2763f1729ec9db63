"""SubscriberRecords: scenario events and what they do to the records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carrier_sim.camara.registry import Connectivity, SubscriberRecords, UnknownNumber

T0 = datetime(2024, 1, 1, tzinfo=UTC)
A = "+447700900001"


def test_activation_then_swap_moves_latest_sim_change() -> None:
    records = SubscriberRecords()
    records.activate(A, T0)
    assert records.get(A).latest_sim_change == T0
    records.sim_swap(A, T0 + timedelta(days=3))
    assert records.get(A).latest_sim_change == T0 + timedelta(days=3)
    assert records.get(A).subscriber_since == T0


def test_recycle_revokes_tokens_and_restarts_the_contract() -> None:
    records = SubscriberRecords()
    records.activate(A, T0)
    records.bind_token(A, "tok")
    assert records.token("tok") is not None
    later = T0 + timedelta(days=100)
    records.recycle(A, later)
    assert records.token("tok") is None
    assert records.get(A).subscriber_since == later
    assert records.get(A).last_sim_swap_at is None


def test_deactivate_keeps_the_number_unassigned_and_port_out_forgets_it() -> None:
    records = SubscriberRecords()
    records.activate(A, T0)
    records.deactivate(A, T0 + timedelta(days=1))
    assert not records.get(A).assigned
    assert not records.get(A).reachable
    with pytest.raises(UnknownNumber):
        records.sim_swap(A, T0 + timedelta(days=2))
    records.activate(A, T0 + timedelta(days=3))
    records.port_out(A, T0 + timedelta(days=4))
    assert A not in records
    with pytest.raises(UnknownNumber):
        records.get(A)


def test_reachability_and_naive_time_is_refused() -> None:
    records = SubscriberRecords()
    records.activate(A, T0)
    records.set_reachability(A, T0 + timedelta(hours=1), {Connectivity.SMS})
    assert records.get(A).connectivity == {Connectivity.SMS}
    records.set_reachability(A, T0 + timedelta(hours=2), ())
    assert not records.get(A).reachable
    with pytest.raises(ValueError, match="timezone-aware"):
        records.sim_swap(A, datetime(2024, 1, 2))


def test_port_in_keeps_an_older_contract_date() -> None:
    records = SubscriberRecords()
    records.port_in(A, T0, subscriber_since=T0 - timedelta(days=365))
    assert records.get(A).subscriber_since == T0 - timedelta(days=365)
    assert records.get(A).sim_activated_at == T0
    records.bind_token(A, "t")
    with pytest.raises(ValueError, match="already bound"):
        records.bind_token(A, "t")
    records.revoke_token("t")
    assert records.token("t") is None
    assert len(records) == 1
    assert [s.msisdn for s in records] == [A]
