"""Reassembly: order, duplicates, expiry, eviction, inconsistency — and split/reassemble round trips."""

from __future__ import annotations

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from carrier_sim.smpp import gsm7
from carrier_sim.smpp.coding import DataCoding, decode_text, encode_text
from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import InvalidOptionalParameterValue, LocalProtocolError
from carrier_sim.smpp.reassembly import (
    AbandonReason,
    ConcatScheme,
    DuplicatePartIgnored,
    InconsistentSegment,
    MessageAbandoned,
    MessageKey,
    MessageReassembled,
    Part,
    PartStored,
    Reassembler,
    part_from_pdu,
)
from carrier_sim.smpp.segmentation import SarInfo, Segment, SegmentationMode, split_text
from carrier_sim.smpp.udh import ESM_CLASS_UDHI, PortAddressing, Udh
from carrier_sim.smpp.udh import InvalidUserDataHeader as UdhError

GSM = DataCoding.SMSC_DEFAULT
UCS2 = DataCoding.UCS2
KEY = MessageKey("111", "222", ConcatScheme.UDH_8, 5)


def _part(
    sequence: int, payload: bytes, *, total: int = 3, reference: int = 5, data_coding: int = GSM
) -> Part:
    return Part("111", "222", ConcatScheme.UDH_8, reference, total, sequence, data_coding, payload)


def _pdu_part(segment: Segment) -> Part | None:
    return part_from_pdu(
        "111",
        "222",
        esm_class=ESM_CLASS_UDHI if segment.esm_class_udhi else 0,
        short_message=segment.short_message,
        data_coding=segment.data_coding,
        sar=segment.sar,
    )


def test_parts_out_of_order() -> None:
    reassembler = Reassembler()
    assert reassembler.add(_part(3, b"c"), 0.0) == [PartStored(KEY, 3, 1, 3)]
    assert reassembler.add(_part(1, b"a"), 1.0) == [PartStored(KEY, 1, 2, 3)]
    assert reassembler.pending_count == 1
    assert reassembler.add(_part(2, b"b"), 2.0) == [MessageReassembled(KEY, 3, GSM, b"abc", None)]
    assert reassembler.pending_count == 0
    assert reassembler.messages_reassembled == 1


def test_duplicates_are_ignored_and_counted_even_after_completion() -> None:
    reassembler = Reassembler(timeout=10.0)
    reassembler.add(_part(1, b"a", total=2), 0.0)
    assert reassembler.add(_part(1, b"a", total=2), 1.0) == [DuplicatePartIgnored(KEY, 1, conflicting=False)]
    assert reassembler.add(_part(1, b"X", total=2), 1.0) == [DuplicatePartIgnored(KEY, 1, conflicting=True)]
    assert reassembler.add(_part(2, b"b", total=2), 2.0) == [MessageReassembled(KEY, 2, GSM, b"ab", None)]
    # A resend after completion is still a duplicate, not the start of a phantom message.
    assert reassembler.add(_part(2, b"b", total=2), 3.0) == [DuplicatePartIgnored(KEY, 2, conflicting=False)]
    assert reassembler.duplicates_ignored == 3
    assert reassembler.pending_count == 0


def test_reference_reused_after_completion_starts_a_new_message() -> None:
    reassembler = Reassembler()
    reassembler.add(_part(1, b"a", total=2), 0.0)
    reassembler.add(_part(2, b"b", total=2), 0.0)
    assert reassembler.add(_part(1, b"new", total=2), 1.0) == [PartStored(KEY, 1, 1, 2)]


def test_expiry_and_deadlines() -> None:
    reassembler = Reassembler(timeout=30.0)
    assert reassembler.next_deadline is None
    reassembler.add(_part(2, b"b"), 100.0)
    other = Part("333", "222", ConcatScheme.UDH_8, 5, 2, 1, GSM, b"x")
    reassembler.add(other, 110.0)
    assert reassembler.next_deadline == 130.0
    assert reassembler.expire(129.9) == []
    (abandoned,) = reassembler.expire(130.0)
    assert abandoned == MessageAbandoned(KEY, AbandonReason.EXPIRED, 3, GSM, ((2, b"b"),), 100.0)
    assert abandoned.missing == (1, 3)
    assert reassembler.next_deadline == 140.0
    assert [message.key.source_addr for message in reassembler.expire(1000.0)] == ["333"]
    assert reassembler.next_deadline is None
    assert reassembler.messages_abandoned == 2


def test_oldest_is_evicted_when_full() -> None:
    reassembler = Reassembler(max_pending=2)
    reassembler.add(_part(1, b"a", reference=1), 0.0)
    reassembler.add(_part(1, b"a", reference=2), 1.0)
    events = reassembler.add(_part(1, b"a", reference=3), 2.0)
    assert isinstance(events[0], MessageAbandoned)
    assert events[0].reason is AbandonReason.EVICTED
    assert events[0].key.reference == 1
    assert events[1] == PartStored(KEY._replace(reference=3), 1, 1, 3)
    assert reassembler.pending_count == 2


def test_single_part_message_completes_at_once() -> None:
    reassembler = Reassembler()
    assert reassembler.add(_part(1, b"only", total=1), 0.0) == [
        MessageReassembled(KEY, 1, GSM, b"only", None)
    ]
    assert reassembler.pending_count == 0


def test_inconsistent_parts_raise_and_change_nothing() -> None:
    reassembler = Reassembler()
    reassembler.add(_part(1, b"a", total=3), 0.0)
    with pytest.raises(InconsistentSegment) as caught:
        reassembler.add(_part(2, b"b", total=4), 0.0)
    assert caught.value.command_status is CommandStatus.ESME_RSUBMITFAIL
    with pytest.raises(InconsistentSegment):
        reassembler.add(_part(2, b"b", total=3, data_coding=UCS2), 0.0)
    assert reassembler.add(_part(2, b"b"), 0.0) == [PartStored(KEY, 2, 2, 3)]


def test_invalid_numbering_is_a_typed_error() -> None:
    with pytest.raises(InconsistentSegment):
        _part(4, b"", total=3)
    with pytest.raises(InconsistentSegment) as caught:
        Part("1", "2", ConcatScheme.SAR, 0x10000, 2, 1, GSM, b"")
    assert caught.value.command_status is CommandStatus.ESME_RINVOPTPARAMVAL
    with pytest.raises(InvalidOptionalParameterValue):
        part_from_pdu("1", "2", esm_class=0, short_message=b"", data_coding=0, sar=SarInfo(1, 2, 3))
    with pytest.raises(InvalidOptionalParameterValue):
        part_from_pdu("1", "2", esm_class=0, short_message=b"", data_coding=0, sar=SarInfo(1, 0, 0))


def test_bad_configuration() -> None:
    with pytest.raises(LocalProtocolError):
        Reassembler(timeout=0)
    with pytest.raises(LocalProtocolError):
        Reassembler(max_pending=0)


def test_part_from_pdu() -> None:
    assert part_from_pdu("1", "2", esm_class=0, short_message=b"plain", data_coding=0) is None
    # A header without concatenation, or with one TS 23.040 says to ignore, is a whole message.
    assert (
        part_from_pdu(
            "1", "2", esm_class=0x40, short_message=bytes.fromhex("0404021005") + b"x", data_coding=4
        )
        is None
    )
    assert (
        part_from_pdu("1", "2", esm_class=0x40, short_message=bytes.fromhex("050003010300"), data_coding=0)
        is None
    )
    part = part_from_pdu(
        "1", "2", esm_class=0x43, short_message=bytes.fromhex("060804beef0302") + b"hi", data_coding=8
    )
    assert part is not None
    assert (part.scheme, part.reference, part.total, part.sequence, part.payload) == (
        ConcatScheme.UDH_16,
        0xBEEF,
        3,
        2,
        b"hi",
    )
    with pytest.raises(UdhError):
        part_from_pdu("1", "2", esm_class=0x40, short_message=b"\x09", data_coding=0)


def test_ports_survive_reassembly() -> None:
    reassembler = Reassembler()
    ports = PortAddressing(2948, 9200)
    segments = split_text(
        "x" * 300, DataCoding.LATIN_1, SegmentationMode.UDH_CONCAT_8, reference=4, ports=ports
    )
    events = [event for segment in segments for event in reassembler.add(_require(_pdu_part(segment)), 0.0)]
    done = events[-1]
    assert isinstance(done, MessageReassembled)
    assert done.payload == b"x" * 300
    assert done.udh == Udh.of(ports)


def _require(part: Part | None) -> Part:
    assert part is not None
    return part


def _coded_text(data_coding: int) -> st.SearchStrategy[str]:
    if data_coding == GSM:
        gsm_chars = sorted(chr(code) for code in range(0x2100) if gsm7.is_gsm7(chr(code)))
        alphabet: st.SearchStrategy[str] = st.one_of(
            st.sampled_from(gsm_chars), st.sampled_from("€{}[]~|\\^\f")
        )
    elif data_coding == UCS2:
        alphabet = st.one_of(st.characters(exclude_categories=["Cs"]), st.characters(min_codepoint=0x10000))
    else:
        alphabet = st.characters(max_codepoint=0xFF)
    return st.one_of(
        st.text(alphabet=alphabet, max_size=30), st.text(alphabet=alphabet, min_size=60, max_size=500)
    )


@settings(max_examples=150)
@given(
    st.sampled_from([GSM, UCS2, DataCoding.LATIN_1]).flatmap(
        lambda dc: st.tuples(st.just(dc), _coded_text(dc))
    ),
    st.sampled_from(list(SegmentationMode)),
    st.integers(0, 255),
    st.data(),
)
def test_any_text_survives_split_and_reassembly_in_any_order_with_duplicates(
    coded: tuple[int, str], mode: SegmentationMode, reference: int, data: st.DataObject
) -> None:
    data_coding, text = coded
    segments = split_text(text, data_coding, mode, reference=reference)
    event(f"{mode.name}: {'several parts' if len(segments) > 1 else 'one part'}")
    if mode is SegmentationMode.PAYLOAD:
        (segment,) = segments
        assert segment.message_payload is not None
        assert decode_text(segment.message_payload, data_coding) == text
        return
    parts = [_pdu_part(segment) for segment in segments]
    if len(segments) == 1:
        assert parts == [None]
        assert decode_text(segments[0].short_message, data_coding) == text
        return
    held = [_require(part) for part in parts]
    arrivals = list(data.draw(st.permutations(held)))
    for duplicate in data.draw(st.lists(st.sampled_from(held), max_size=5)):
        arrivals.insert(data.draw(st.integers(0, len(arrivals))), duplicate)

    reassembler = Reassembler()
    events = [event for now, part in enumerate(arrivals) for event in reassembler.add(part, float(now))]
    completed = [event for event in events if isinstance(event, MessageReassembled)]
    assert len(completed) == 1
    assert completed[0].data_coding == data_coding
    assert decode_text(completed[0].payload, data_coding) == text
    assert reassembler.duplicates_ignored == len(arrivals) - len(held)
    assert reassembler.pending_count == 0


def test_gsm_and_ucs2_split_reassemble_examples() -> None:
    for text, data_coding in (("€" * 200, GSM), ("👍🏽" * 50, UCS2)):
        reassembler = Reassembler()
        segments = split_text(text, data_coding, SegmentationMode.SAR, reference=65535)
        events = [e for s in reversed(segments) for e in reassembler.add(_require(_pdu_part(s)), 0.0)]
        assert isinstance(events[-1], MessageReassembled)
        assert decode_text(events[-1].payload, data_coding) == text
        assert events[-1].payload == encode_text(text, data_coding)


class ReassemblerMachine(RuleBasedStateMachine):
    """Parts of a few messages arrive interleaved while the clock advances; the model checks every outcome."""

    TIMEOUT = 10.0
    MAX_PENDING = 3

    def __init__(self) -> None:
        super().__init__()
        self.reassembler = Reassembler(timeout=self.TIMEOUT, max_pending=self.MAX_PENDING)
        self.now = 0.0
        # reference -> (total, first-seen time, sequences held); the model of what is pending.
        self.model: dict[int, tuple[int, float, set[int]]] = {}

    @staticmethod
    def _payload(reference: int, sequence: int) -> bytes:
        return bytes((reference, sequence))

    @rule(reference=st.integers(0, 5), sequence=st.integers(1, 4))
    def add_part(self, reference: int, sequence: int) -> None:
        total = 2 + reference % 3
        if sequence > total:
            return
        part = Part(
            "a", "b", ConcatScheme.UDH_8, reference, total, sequence, GSM, self._payload(reference, sequence)
        )
        events = self.reassembler.add(part, self.now)
        for happened in events:
            if isinstance(happened, MessageAbandoned):
                assert happened.reason is AbandonReason.EVICTED
                oldest = min(self.model, key=lambda ref: self.model[ref][1])
                assert happened.key.reference == oldest
                del self.model[oldest]
        outcome = events[-1]
        if isinstance(outcome, DuplicatePartIgnored):
            assert reference not in self.model or sequence in self.model[reference][2]
            return
        _, _, held = self.model.setdefault(reference, (total, self.now, set()))
        held.add(sequence)
        if isinstance(outcome, MessageReassembled):
            assert held == set(range(1, total + 1))
            assert outcome.payload == b"".join(self._payload(reference, n) for n in range(1, total + 1))
            del self.model[reference]
        else:
            assert outcome == PartStored(part.key, sequence, len(held), total)

    @rule(step=st.floats(0.0, 8.0))
    def advance(self, step: float) -> None:
        self.now += step
        expired = self.reassembler.expire(self.now)
        due = {ref for ref, (_, first, _) in self.model.items() if first + self.TIMEOUT <= self.now}
        assert {message.key.reference for message in expired} == due
        for message in expired:
            assert message.reason is AbandonReason.EXPIRED
            assert {sequence for sequence, _ in message.parts} == self.model.pop(message.key.reference)[2]

    @precondition(lambda self: self.model)
    @invariant()
    def deadline_is_the_oldest_first_part_plus_timeout(self) -> None:
        deadline = self.reassembler.next_deadline
        assert deadline is not None
        assert deadline <= min(first for _, first, _ in self.model.values()) + self.TIMEOUT

    @invariant()
    def bounded(self) -> None:
        assert self.reassembler.pending_count == len(self.model) <= self.MAX_PENDING


TestReassemblerMachine = ReassemblerMachine.TestCase
