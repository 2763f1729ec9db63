"""The message store on its own: replace_if_present's index and submit_multi groups over retention."""

from __future__ import annotations

import pytest

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.receipt import MessageState
from carrier_sim.smsc.store import MessageStore, StoredMessage, StoreError


def message(destination: str = "447700900001", system_id: str = "esme", group_id: int = 0,
            data: bytes = b"x") -> StoredMessage:
    """A message from 12345 due at 10 and valid until 100."""
    return StoredMessage(0, system_id, "", "12345", destination, data, 0, 0, 0, 0.0, 10.0, 100.0,
                         group_id=group_id)


def test_a_message_a_submit_multi_replaced_leaves_its_group_when_it_is_forgotten() -> None:
    store = MessageStore(retention=5.0)
    alone = store.submit(message())
    group = store.issue_id()
    replaced = store.submit(message(group_id=group, data=b"new"), replace_if_present=True)
    assert replaced is alone
    assert alone.group_id == 0  # keeps the id the ESME got for it
    assert store.query(group, "", system_id="esme") == [alone]
    assert store.query(alone.message_id, "", system_id="esme") == [alone]
    store.finish(alone, MessageState.DELIVERED, 20.0)
    store.finish(store.submit(message("447700900002")), MessageState.DELIVERED, 30.0)  # past the retention
    for mid in (group, alone.message_id):
        with pytest.raises(StoreError) as refused:
            store.query(mid, "", system_id="esme")
        assert refused.value.status == CommandStatus.ESME_RQUERYFAIL


def test_replace_if_present_takes_the_newest_pending_message_of_the_key() -> None:
    store = MessageStore()
    older = store.submit(message(data=b"older"))
    newer = store.submit(message(data=b"newer"))
    assert store.submit(message(data=b"new"), replace_if_present=True) is newer
    store.finish(newer, MessageState.DELETED, 1.0)
    assert store.submit(message(data=b"newest"), replace_if_present=True) is older
    store.finish(older, MessageState.DELETED, 1.0)
    fresh = store.submit(message(data=b"fresh"), replace_if_present=True)
    assert fresh.message_id not in (older.message_id, newer.message_id)
