"""gsm7's fast paths (C charmap codec, ASCII translation, set check) against the reference loops, on anything.

The fast paths only take the common case and hand everything else to the loops, so results *and* errors (type,
command_status, message) must be the loops' own.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from carrier_sim.smpp import gsm7
from carrier_sim.smpp.errors import SmppError

GSM_CHARS = "".join(sorted(gsm7._ENCODE))
# Text that is mostly GSM (so the fast path is exercised) with anything else mixed in.
texts = st.text(alphabet=st.sampled_from(GSM_CHARS)) | st.text() | st.text(alphabet=st.characters(max_codepoint=0x7F))
# Septets that are mostly valid, octets that are anything.
octets = st.binary() | st.binary().map(lambda data: bytes(octet & 0x7F for octet in data))


def _outcome(fn: object, arg: object) -> tuple[str, object]:
    try:
        return "ok", fn(arg)  # type: ignore[operator]
    except SmppError as err:
        return "error", (type(err), err.command_status, err.message, str(err))


def _encode_loop(text: str) -> bytes:
    return gsm7._encode_reference(text)


def _decode_loop(septets: bytes) -> str:
    return gsm7._decode_reference(septets)


@given(texts)
@example("")
@example("`")  # ASCII, not GSM
@example("{[€]}")  # extension characters
@example("\x00")  # shares code 0x1B's placeholder slot in the alphabet table
@example("\ufffe")  # the decoder table's "undefined" marker
@example("@£$¥" * 50)
def test_encode_matches_the_reference(text: str) -> None:
    assert _outcome(gsm7.encode, text) == _outcome(_encode_loop, text)


@given(octets)
@example(b"")
@example(b"\x1b")  # trailing lone escape
@example(b"\x1b\x1b")  # escape-escape shows a space
@example(b"\x1b\x41")  # undefined extension shows the basic character
@example(b"\x80")
@example(b"abc\x1b\x65")
def test_decode_matches_the_reference(septets: bytes) -> None:
    assert _outcome(gsm7.decode, septets) == _outcome(_decode_loop, septets)
    assert _outcome(gsm7.decode, bytearray(septets)) == _outcome(_decode_loop, septets)


@given(texts)
@example("\x00")
@example("\ufffe")
def test_is_gsm7_matches_the_alphabet(text: str) -> None:
    assert gsm7.is_gsm7(text) == all(char in gsm7._ENCODE for char in text)


def test_every_character_encodes_as_the_reference_does() -> None:
    for code in range(0x2200):
        char = chr(code)
        assert _outcome(gsm7.encode, char) == _outcome(_encode_loop, char)
    for value in range(256):
        for pair in (bytes([value]), bytes([0x1B, value]), bytes([value, 0x1B])):
            assert _outcome(gsm7.decode, pair) == _outcome(_decode_loop, pair)
