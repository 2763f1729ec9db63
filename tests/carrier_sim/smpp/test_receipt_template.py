"""ReceiptTemplate against format_receipt: the same text whenever the template writes one, and None (so that
format_receipt decides, and raises what it raises) for anything it does not take."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from carrier_sim.smpp.errors import LocalProtocolError
from carrier_sim.smpp.receipt import (
    DECIMAL_12,
    KANNEL_LIKE,
    MIXED_ID_BASES,
    PRESETS,
    SPEC_V34,
    TERSE,
    IdBase,
    IdFormat,
    MessageState,
    Receipt,
    ReceiptDialect,
    ReceiptField,
    ReceiptTemplate,
    format_receipt,
)

_ORDER = (
    ReceiptField.ID,
    ReceiptField.SUB,
    ReceiptField.DLVRD,
    ReceiptField.SUBMIT_DATE,
    ReceiptField.DONE_DATE,
    ReceiptField.STAT,
    ReceiptField.ERR,
)

id_formats = st.builds(
    IdFormat, st.sampled_from(IdBase), st.booleans(), st.integers(min_value=0, max_value=64)
)
dialects = st.sampled_from(PRESETS) | st.builds(
    ReceiptDialect,
    name=st.just("drawn"),
    submit_id=id_formats,
    receipt_id=id_formats,
    counts=st.booleans(),
    text_label=st.sampled_from(["text", "Text"]),
    include_text=st.booleans(),
    text_length=st.integers(min_value=0, max_value=30),
    date_digits=st.sampled_from([10, 12]),
    err_width=st.sampled_from([3, 4]),
    order=st.permutations(_ORDER).map(tuple),
)
# Around 2000 and 2100 (the years a receipt can write), today, fractions next to a whole second, nonsense.
ordinary_timestamps = st.floats(min_value=1.6e9, max_value=1.9e9)
timestamps = (
    ordinary_timestamps
    | st.floats(min_value=946_684_700.0, max_value=946_684_900.0)
    | st.floats(min_value=4_102_444_700.0, max_value=4_102_444_900.0)
    | st.floats(min_value=1.6e9, max_value=1.9e9)
    | st.integers(min_value=1_700_000_000, max_value=1_800_000_000).map(lambda s: s + 0.9999995)
    | st.integers(min_value=1_700_000_000, max_value=1_800_000_000).map(lambda s: s + 0.999999)
    | st.floats(allow_nan=True, allow_infinity=True)
)
numbers = st.integers(min_value=0, max_value=2**40) | st.integers(min_value=-5, max_value=2**300)


def _reference(
    dialect: ReceiptDialect, number: int, submitted: int, delivered: int, submit_time: float, done_time: float,
    stat: MessageState, err: int, excerpt: str | None,
) -> str | None:
    """What Smsc.receipt_pdu wrote before the template: None where that raised."""
    try:
        return format_receipt(
            Receipt(
                message_id=dialect.submit_id.render(number),
                submitted=submitted,
                delivered=delivered,
                submit_date=datetime.fromtimestamp(submit_time, UTC).replace(tzinfo=None),
                done_date=datetime.fromtimestamp(done_time, UTC).replace(tzinfo=None),
                stat=stat,
                err=f"{err:0{dialect.err_width}d}",
                text=excerpt,
            ),
            dialect,
        )
    except (LocalProtocolError, ValueError, OverflowError, OSError):
        return None


@given(
    dialects,
    numbers,
    st.integers(min_value=-2, max_value=1200),
    st.integers(min_value=-2, max_value=1200),
    timestamps,
    timestamps,
    st.sampled_from(MessageState),
    st.integers(min_value=-3, max_value=70000),
    st.none() | st.text(max_size=40),
)
@settings(max_examples=400)
@example(TERSE, 0xBEEF, 1, 0, 1_700_000_000.25, 1_700_000_061.5, MessageState.UNDELIVERABLE, 27, "T{e}xt€")
@example(SPEC_V34, 12, 1, 0, 1_700_000_000.25, 1_700_000_061.5, MessageState.REJECTED, 13, "Ünïcode\nline")
@example(MIXED_ID_BASES, 972660181, 1, 1, 1_700_000_000.25, 1_700_000_001.5, MessageState.DELIVERED, 0, "")
@example(DECIMAL_12, 5, 1, 1, 1_700_000_000.25, 1_700_000_059.75, MessageState.EXPIRED, 0, "a" * 40)
@example(KANNEL_LIKE, 7, 1, 1, 1_700_000_000.25, 1_700_000_001.5, MessageState.DELIVERED, 0, "Your code is 1")
@example(KANNEL_LIKE, 7, 1, 1, 1_700_000_000.9999996, 1_700_000_000.0, MessageState.DELIVERED, 0, "x")
@example(KANNEL_LIKE, 7, 1, 1, math.nan, 1_700_000_000.0, MessageState.DELIVERED, 0, None)
def test_template_writes_what_format_receipt_writes(
    dialect: ReceiptDialect, number: int, submitted: int, delivered: int, submit_time: float, done_time: float,
    stat: MessageState, err: int, excerpt: str | None,
) -> None:
    template = ReceiptTemplate(dialect)
    expected = _reference(dialect, number, submitted, delivered, submit_time, done_time, stat, err, excerpt)
    try:
        message_id = dialect.submit_id.render(number)
    except LocalProtocolError:
        message_id = "x"  # a number the SMSC cannot issue: the template must leave it alone
    for _ in range(2):  # the second call is served from the template's cache
        got = template.text(number, message_id, submitted, delivered, submit_time, done_time, stat, err, excerpt)
        if got is not None:
            assert got == expected
    ordinary = 0 <= number < 2**40 and min(submitted, delivered, err) >= 0
    ordinary_times = all(1.6e9 <= t <= 1.9e9 and t % 1 < 0.999 for t in (submit_time, done_time))
    if ordinary and ordinary_times:
        assert got is not None  # the template must actually take the ordinary case


def test_template_cache_stays_bounded() -> None:
    template = ReceiptTemplate(KANNEL_LIKE)
    for second in range(2000):
        text = template.text(1, "1", 1, 1, 1_700_000_000.0 + second, 1_700_000_000.0 + second,
                             MessageState.DELIVERED, 0, "hi")
        assert text is not None
    assert len(template._around_id) <= 256
