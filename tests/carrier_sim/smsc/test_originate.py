"""MTs the carrier originates itself (RCS OTPs, mail turned into SMS) go the way submitted MTs go."""

from __future__ import annotations

from carrier_sim.smpp.receipt import MessageState
from carrier_sim.smsc.centre import DelayDistribution, Smsc, SmscConfig
from carrier_sim.smsc.store import StoredMessage
from carrier_sim.smsc.subscribers import Condition, SubscriberRegistry


def _smsc(registry: SubscriberRegistry, absent_retry: float = 0.0) -> tuple[Smsc, list[StoredMessage]]:
    delivered: list[StoredMessage] = []
    smsc = Smsc(SmscConfig(absent_retry=absent_retry), registry, mt_listener=lambda m, now: delivered.append(m))
    return smsc, delivered


def test_a_reachable_subscriber_gets_it_through_the_listener_and_it_is_counted() -> None:
    smsc, delivered = _smsc(SubscriberRegistry())
    stored = smsc.originate_mt("carrier", "+447700900001", b"\x05\x00\x03\x01\x01\x01otp", 10.0,
                               data_coding=0x04, esm_class=0x40)
    assert [m.destination_addr for m in delivered] == ["447700900001"]
    assert delivered[0].data_coding == 0x04
    assert delivered[0].esm_class == 0x40
    assert stored.state is MessageState.DELIVERED
    assert smsc.stats.originated == 1
    assert smsc.stats.delivered == 1
    # No ESME asked for it, so no receipt goes anywhere.
    assert smsc.stats.receipts_sent == 0


def test_a_barred_subscriber_does_not_get_it() -> None:
    registry = SubscriberRegistry()
    registry.set("447700900002", Condition.BARRED)
    smsc, delivered = _smsc(registry)
    stored = smsc.originate_mt("carrier", "447700900002", b"hello", 0.0)
    assert delivered == []
    assert stored.state is not MessageState.DELIVERED
    assert smsc.stats.undeliverable == 1


def test_an_absent_subscriber_is_retried_until_reachable() -> None:
    registry = SubscriberRegistry()
    registry.set("447700900003", Condition.ABSENT)
    smsc, delivered = _smsc(registry, absent_retry=30.0)
    stored = smsc.originate_mt("carrier", "447700900003", b"hello", 0.0, validity=3600.0)
    assert delivered == []
    assert stored.pending
    registry.set("447700900003", Condition.REACHABLE)
    deadline = smsc.next_deadline
    assert deadline == 30.0
    smsc.handle_timers(deadline)
    assert [m.data for m in delivered] == [b"hello"]


def test_a_roaming_subscriber_gets_it_once_the_visited_network_delivers_it() -> None:
    registry = SubscriberRegistry()
    registry.set("447700900004", Condition.ROAMING)
    delivered: list[tuple[float, StoredMessage]] = []
    smsc = Smsc(SmscConfig(roaming_delay=DelayDistribution(1.5, 1.5)), registry,
                mt_listener=lambda m, now: delivered.append((now, m)))
    stored = smsc.originate_mt("carrier", "+447700900004", b"otp 123456", 100.0)
    assert delivered == []
    assert stored.pending
    assert smsc.next_deadline == 101.5
    smsc.handle_timers(101.5)
    assert [(t, m.data) for t, m in delivered] == [(101.5, b"otp 123456")]
    assert stored.state is MessageState.DELIVERED
    assert smsc.stats.delivered == 1
